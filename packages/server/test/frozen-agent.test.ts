import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { keepHostFirewallState } from "@wrenn/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readClientConfig } from "../src/single-host/bootstrap.js";
import {
  agentCall,
  apiClient,
  type FleetAgent,
  type FleetServer,
  freePort,
  startFleetAgent,
  startFleetServer,
  stopAgentWithSandboxes,
} from "./helpers/fleet.js";
import { openSocket, SERVICE } from "./helpers/port-service.js";
import { until } from "./helpers/processes.js";

// A frozen agent (SIGSTOP: its port still accepts connections, nothing answers). Calls under way
// to it when the server marks its host unreachable fail then with the 503 new calls get, instead
// of waiting out the agent call limit (300 s) or, for envd streams and file transfers, forever;
// WebSockets tunnelled to its sandboxes' ports are closed then.
// A standalone agent joined to a control plane (SQLite), each its own process. Needs root.

const root = process.getuid?.() === 0;
const TEMPLATE = "test-minimal";
// A range of its own: other suites may run agents on this machine at the same time.
const CIDR = `10.219.${Math.floor(Math.random() * 250)}.0/24`;
const STALE_SEC = 3;

describe.skipIf(!root)("a frozen agent", { timeout: 120_000 }, () => {
  const base = mkdtempSync(join(tmpdir(), "wrenn-frozen-agent-"));
  let server: FleetServer;
  let agent: FleetAgent;
  let api: ReturnType<typeof apiClient>;
  let restoreHost: () => Promise<void> = async () => {};

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    server = await startFleetServer(
      "server",
      "",
      {
        WRENN_DEFAULT_TEMPLATE: TEMPLATE,
        WRENN_HEARTBEAT_SEC: "1",
        WRENN_HOST_STALE_SEC: String(STALE_SEC),
        WRENN_RECONCILE_INTERVAL_MS: "500",
      },
      base,
    );
    const config = await until("the admin's client config", () =>
      readClientConfig(join(server.dataDir, "config.json")),
    );
    api = apiClient(() => server.url, config.api_key);
    const token = await api<{ token: string }>("POST", "/v1/hosts/tokens", { shared: true });
    expect(token.status).toBe(201);
    const dir = join(base, "agent");
    mkdirSync(dir);
    agent = startFleetAgent(
      "agent",
      { dir, port: await freePort(), cidr: CIDR, serverUrl: server.url, token: token.body.token },
      { WRENN_HEARTBEAT_SEC: "1" },
      base,
    );
    await until("the agent to answer", () => agentCall(agent, "ListSandboxes").then(() => true));
  }, 120_000);

  afterAll(async () => {
    if (agent?.proc.pid) process.kill(agent.proc.pid, "SIGCONT");
    if (agent) await stopAgentWithSandboxes(agent);
    await server?.stop();
    await restoreHost();
    if (process.env.WRENN_TEST_KEEP_LOGS) console.info(`[frozen-agent] kept ${base}`);
    else rmSync(base, { recursive: true, force: true });
  }, 60_000);

  it("fails calls under way to it soon after its host is marked unreachable, with a 503, and closes its tunnels", async () => {
    const created = await until("a sandbox on the agent", async () => {
      const res = await api<{ id: string }>("POST", "/v1/sandboxes", { memory_mb: 128 });
      return res.status === 201 ? res.body : undefined;
    });
    const id = created.id;
    const hostId = (await api<{ host_id: string }>("GET", `/v1/sandboxes/${id}`)).body.host_id;
    // Open before the freeze: a WebSocket to a port of the sandbox by E2B's headers, which the
    // server tunnels through the agent.
    await api("POST", `/v1/sandboxes/${id}/exec`, {
      cmd: 'node -e "$SERVICE" >/dev/null 2>&1 &',
      envs: { SERVICE },
    });
    const tunnel = await until("the sandbox's service to take a WebSocket", () =>
      openSocket(`${server.url.replace(/^http/, "ws")}/chat`, {
        "e2b-sandbox-id": id,
        "e2b-sandbox-port": "8000",
      }).catch(() => undefined),
    );
    expect(await tunnel.next()).toBe("hello /chat");
    const tunnelClosed = new Promise<number>((resolve) =>
      tunnel.ws.once("close", () => resolve(Date.now())),
    );
    // Under way before the freeze: an envd stream through the agent's proxy.
    const exec = api<{ code?: string }>("POST", `/v1/sandboxes/${id}/exec`, {
      cmd: "sleep 100",
      timeout_ms: 110_000,
    });
    await sleep(1_000);
    process.kill(agent.proc.pid as number, "SIGSTOP");
    // Made after the freeze, before the host is given up on: an agent RPC and a file transfer.
    const pause = api<{ code?: string }>("POST", `/v1/sandboxes/${id}/pause`);
    const download = api<{ code?: string }>("GET", `/v1/sandboxes/${id}/files?path=/etc/hostname`);
    const settled = (call: Promise<unknown>) =>
      call.then(
        () => Date.now(),
        () => Date.now(),
      );
    const ends = [exec, pause, download].map(settled);
    await until(
      "the host to be unreachable",
      async () =>
        (await api<{ state: string }>("GET", `/v1/hosts/${hostId}`)).body.state === "unreachable",
      30_000,
    );
    const markedAt = Date.now();
    const answers = await Promise.race([
      Promise.all([exec, pause, download]),
      sleep(15_000).then(() => undefined),
    ]);
    expect(answers, "calls still hanging 15 s after the host was marked unreachable").toBeDefined();
    const tunnelEnd = await Promise.race([tunnelClosed, sleep(15_000).then(() => undefined)]);
    expect(
      tunnelEnd,
      "the WebSocket still open 15 s after the host was marked unreachable",
    ).toBeDefined();
    // Seen unreachable here up to a poll (200 ms) late; cut off at the server's next tick (500 ms).
    const lastEnd = Math.max(...(await Promise.all(ends)), tunnelEnd as number);
    expect(lastEnd - markedAt).toBeLessThan(2_000);
    for (const answer of answers ?? []) {
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe("host_unreachable");
    }
    // A new call gets the same answer.
    const fresh = await api<{ code?: string }>("POST", `/v1/sandboxes/${id}/exec`, { cmd: "true" });
    expect(fresh.status).toBe(503);
    expect(fresh.body.code).toBe("host_unreachable");

    process.kill(agent.proc.pid as number, "SIGCONT");
    await until(
      "the host to be ready again",
      async () =>
        (await api<{ state: string }>("GET", `/v1/hosts/${hostId}`)).body.state === "ready",
      30_000,
    );
    // Back, its calls go through again: nothing of the give-up is left on its connection.
    await until("the sandbox to come back", async () => {
      const res = await api<{ state: string }>("GET", `/v1/sandboxes/${id}`);
      return res.body.state === "running" || res.body.state === "paused";
    });
    if ((await api<{ state: string }>("GET", `/v1/sandboxes/${id}`)).body.state === "paused")
      expect((await api("POST", `/v1/sandboxes/${id}/resume`)).status).toBe(200);
    const again = await api<{ stdout: string }>("POST", `/v1/sandboxes/${id}/exec`, {
      cmd: "echo back",
    });
    expect(again.body.stdout).toBe("back\n");
    expect((await api("DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});
