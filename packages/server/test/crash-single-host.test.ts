import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { keepHostFirewallState } from "@wrenn/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readClientConfig } from "../src/single-host/bootstrap.js";
import {
  AGENT_STEPS,
  type Api,
  type CrashStep,
  expectConsistent,
  runIntoCrash,
  SERVER_STEPS,
  sandboxLeftovers,
} from "./helpers/crash.js";
import { apiClient, freePort } from "./helpers/fleet.js";
import { type Daemon, spawnDaemon, until } from "./helpers/processes.js";

// Issue #13, crash at every step: the real single-host `wrenn-server` (its agent embedded) is
// started with WRENN_CRASH_AT naming one step of create, pause, resume, snapshot or destroy, and
// SIGKILLs itself there. Each restart arms the next step, so one restart per step: after it,
// every sandbox is running (and runs a command), paused or stopped at once (the first
// reconcile runs before the server listens), and nothing of the stopped ones is left on the
// host. The standalone agent's own steps are all covered by crash-agent.test.ts; here the
// server's steps and one of each agent operation. Needs root (namespaces, mounts, cgroups).

const root = process.getuid?.() === 0;
const serverMain = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const TEMPLATE = "test-minimal";
const CIDR = process.env.WRENN_SANDBOX_CIDR || "10.217.0.0/16";
const STEPS: CrashStep[] = [
  ...SERVER_STEPS,
  ...AGENT_STEPS.filter((s) =>
    [
      "create:network",
      "create:running",
      "pause:freeze",
      "snapshot:copy",
      "destroy:record",
    ].includes(s.step),
  ),
];

describe.skipIf(!root)("kill -9 of the single-host server at every step", () => {
  const base = mkdtempSync(join(tmpdir(), "wrenn-crash-server-"));
  const dataDir = join(base, "data");
  const agentDir = join(dataDir, "agent");
  let port: number;
  let daemon: Daemon | undefined;
  let api: Api;
  let restoreHost: () => Promise<void> = async () => {};

  async function start(crashAt?: string): Promise<Daemon> {
    const proc = spawnDaemon(
      "server",
      serverMain,
      ["serve"],
      {
        WRENN_DATA_DIR: dataDir,
        WRENN_PORT: String(port),
        WRENN_DEFAULT_TEMPLATE: TEMPLATE,
        WRENN_WARM_POOL: "0",
        WRENN_SANDBOX_CIDR: CIDR,
        WRENN_RECONCILE_INTERVAL_MS: "1000",
        WRENN_ORPHAN_GRACE_SEC: "1",
        WRENN_LOG_LEVEL: "info",
        ...(crashAt ? { WRENN_CRASH_AT: crashAt } : {}),
      },
      join(base, "server.log"),
    );
    daemon = proc;
    await until(
      "the server to be ready",
      async () => {
        if (proc.proc.exitCode !== null || proc.proc.signalCode !== null)
          throw new Error(`server exited: ${proc.output().slice(-2000)}`);
        return (await fetch(`http://127.0.0.1:${port}/health`)).status === 200;
      },
      180_000,
    );
    return proc;
  }

  async function destroyLive(ids: string[]): Promise<void> {
    for (const id of ids) {
      const res = await api("DELETE", `/v1/sandboxes/${id}`);
      expect(res.status, `destroy ${id}: ${JSON.stringify(res.body)}`).toBe(204);
    }
  }

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    port = await freePort();
    await start();
    const config = await until("the client config", () =>
      readClientConfig(join(dataDir, "config.json")),
    );
    api = apiClient(() => `http://127.0.0.1:${port}`, config.api_key);
  }, 240_000);

  afterAll(async () => {
    // A failed case may leave sandboxes: a clean start adopts them, and they are destroyed.
    try {
      if (!daemon || daemon.proc.exitCode !== null || daemon.proc.signalCode !== null)
        await start();
      const { body } = await api<{ sandboxes: { id: string }[] }>("GET", "/v1/sandboxes");
      for (const s of body.sandboxes) await api("DELETE", `/v1/sandboxes/${s.id}`);
    } catch (err) {
      console.error("[crash] cleaning up failed:", err);
    }
    await daemon?.stop();
    await restoreHost();
    if (process.env.WRENN_TEST_KEEP_LOGS) console.info(`[crash] kept ${base}`);
    else rmSync(base, { recursive: true, force: true });
  }, 120_000);

  it("restarts with nothing leaked and every sandbox usable or stopped", {
    timeout: 900_000,
  }, async () => {
    const seen = new Set<string>();
    // The process that runs into the first step.
    await daemon?.stop();
    let current = await start(STEPS[0]?.step);
    for (const [i, step] of STEPS.entries()) {
      const started = performance.now();
      const id = await runIntoCrash(api, step, TEMPLATE, current.exited);
      if (id) seen.add(id);
      expect(current.output()).toContain(`WRENN_CRASH_AT=${step.step}: killing`);
      const next = STEPS[i + 1];
      current = await start(next?.step);
      const { live } = await expectConsistent(api, agentDir, seen, step.kind === "create", 2_000);
      // The host stays light, except for sandboxes the next (destroy) step needs alive.
      if (next?.kind !== "destroy") await destroyLive(live);
      console.info(
        `[crash] ${step.step}: ${Math.round(performance.now() - started)} ms, ${live.length} live`,
      );
    }
    // The last restart armed nothing: everything goes, and nothing is left of anything seen.
    const { live } = await expectConsistent(api, agentDir, seen, false, 2_000);
    await destroyLive(live);
    for (const id of seen) expect(await sandboxLeftovers(agentDir, id)).toEqual([]);
  });
});
