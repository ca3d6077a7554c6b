import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { keepHostFirewallState } from "@wrenn/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readClientConfig } from "../src/single-host/bootstrap.js";
import {
  AGENT_STEPS,
  type Api,
  expectConsistent,
  runIntoCrash,
  sandboxLeftovers,
} from "./helpers/crash.js";
import {
  agentCall,
  apiClient,
  type FleetAgent,
  type FleetServer,
  freePort,
  startFleetAgent,
  startFleetServer,
} from "./helpers/fleet.js";
import { until } from "./helpers/processes.js";

// Issue #13, crash at every step: a standalone `wrenn-agent` joined to a control plane (its own
// process, SQLite) SIGKILLs itself at each named step of create, pause, resume, snapshot and
// destroy (WRENN_CRASH_AT). Each restart arms the next step. Once the agent answers again and a
// reconcile tick has run, every sandbox is running (and runs a command), paused or stopped, and
// nothing of the stopped ones is left on the host. Needs root (namespaces, mounts, cgroups).

const root = process.getuid?.() === 0;
const TEMPLATE = "test-minimal";
const CIDR = process.env.WRENN_SANDBOX_CIDR || "10.218.0.0/16";
const TICK_MS = 500;

describe.skipIf(!root)("kill -9 of a standalone agent at every step", () => {
  const base = mkdtempSync(join(tmpdir(), "wrenn-crash-agent-"));
  const agentDir = join(base, "agent");
  let server: FleetServer;
  let agent: FleetAgent | undefined;
  let agentPort: number;
  let api: Api;
  let restoreHost: () => Promise<void> = async () => {};

  async function startAgent(crashAt?: string, token?: string): Promise<FleetAgent> {
    const proc = startFleetAgent(
      "agent",
      {
        dir: agentDir,
        port: agentPort,
        cidr: CIDR,
        serverUrl: server.url,
        ...(token ? { token } : {}),
      },
      { WRENN_HEARTBEAT_SEC: "1", ...(crashAt ? { WRENN_CRASH_AT: crashAt } : {}) },
      base,
    );
    agent = proc;
    await until(
      "the agent to answer",
      async () => {
        if (proc.proc.exitCode !== null || proc.proc.signalCode !== null)
          throw new Error(`agent exited: ${proc.output().slice(-2000)}`);
        return agentCall(proc, "ListSandboxes").then(() => true);
      },
      60_000,
    );
    // The server's next reconcile tick has seen it.
    await sleep(3 * TICK_MS);
    return proc;
  }

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    mkdirSync(agentDir);
    agentPort = await freePort();
    server = await startFleetServer(
      "server",
      "",
      {
        WRENN_DEFAULT_TEMPLATE: TEMPLATE,
        WRENN_HEARTBEAT_SEC: "1",
        // Restarts are quicker than this: the host never turns unreachable here.
        WRENN_HOST_STALE_SEC: "120",
        WRENN_RECONCILE_INTERVAL_MS: String(TICK_MS),
        WRENN_ORPHAN_GRACE_SEC: "1",
      },
      base,
    );
    const config = await until("the admin's client config", () =>
      readClientConfig(join(server.dataDir, "config.json")),
    );
    api = apiClient(() => server.url, config.api_key);
    const token = await api<{ token: string }>("POST", "/v1/hosts/tokens", { shared: true });
    expect(token.status).toBe(201);
    await startAgent(AGENT_STEPS[0]?.step, token.body.token);
  }, 120_000);

  afterAll(async () => {
    try {
      if (!agent || agent.proc.exitCode !== null || agent.proc.signalCode !== null)
        await startAgent();
      const { body } = await api<{ sandboxes: { id: string }[] }>("GET", "/v1/sandboxes");
      for (const s of body.sandboxes) await api("DELETE", `/v1/sandboxes/${s.id}`);
    } catch (err) {
      console.error("[crash-agent] cleaning up failed:", err);
    }
    await agent?.stop();
    await server?.stop();
    await restoreHost();
    if (process.env.WRENN_TEST_KEEP_LOGS) console.info(`[crash-agent] kept ${base}`);
    else rmSync(base, { recursive: true, force: true });
  }, 120_000);

  it("restarts with nothing leaked and every sandbox usable or stopped", {
    timeout: 900_000,
  }, async () => {
    const seen = new Set<string>();
    for (const [i, step] of AGENT_STEPS.entries()) {
      const started = performance.now();
      const current = agent as FleetAgent;
      const id = await runIntoCrash(api, step, TEMPLATE, current.exited);
      if (id) seen.add(id);
      expect(current.output()).toContain(`WRENN_CRASH_AT=${step.step}: killing`);
      const next = AGENT_STEPS[i + 1];
      await startAgent(next?.step);
      const { live } = await expectConsistent(
        api,
        agentDir,
        seen,
        step.kind === "create",
        4 * TICK_MS,
      );
      if (next?.kind !== "destroy") {
        for (const s of live) expect((await api("DELETE", `/v1/sandboxes/${s}`)).status).toBe(204);
      }
      console.info(
        `[crash-agent] ${step.step}: ${Math.round(performance.now() - started)} ms, ${live.length} live`,
      );
    }
    const { live } = await expectConsistent(api, agentDir, seen, false, 4 * TICK_MS);
    for (const s of live) expect((await api("DELETE", `/v1/sandboxes/${s}`)).status).toBe(204);
    for (const id of seen) expect(await sandboxLeftovers(agentDir, id)).toEqual([]);
  });
});
