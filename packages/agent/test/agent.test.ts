import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Listener } from "@wrenn/envd";
import { HostAgentService, SandboxState } from "@wrenn/proto/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultEnvdDir } from "../src/config/index.js";
import { silentLogger } from "../src/logger/index.js";
import { AddressPool, keepHostFirewallState } from "../src/network/index.js";
import { type Agent, createAgent } from "../src/rpc/index.js";
import { NamespaceRuntime, SANDBOX_HOSTNAME } from "../src/runtime/index.js";
import { EnvdClient } from "./contract/envd-client.js";
import { findLeaks } from "./contract/leaks.js";
import { listenPort } from "./fixtures/listen-port.js";

// The agent as a client sees it: HostAgentService over a real port (HTTP/1.1 and h2c), the envd
// proxy, the TTL reaper, and a kill -9 of the whole agent process mid-create. Needs root.
const net = `10.213.${8 + Math.floor(Math.random() * 110)}`;
const cidr = `${net}.0/24`;
const TEMPLATE = "test-minimal";

const agentClient = (baseUrl: string, httpVersion: "1.1" | "2" = "1.1") =>
  createClient(HostAgentService, createConnectTransport({ baseUrl, httpVersion }));

async function codeOf(promise: Promise<unknown>): Promise<Code | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("agent over Connect", { timeout: 60_000 }, () => {
  const prefix = `ag${randomBytes(3).toString("hex")}`;
  const ids = new Set<string>();
  const newId = (what: string) => {
    const id = `${prefix}-${what}`;
    ids.add(id);
    return id;
  };
  let dir: string;
  let agent: Agent;
  let server: Listener;
  let client: ReturnType<typeof agentClient>;
  let restoreHost: () => Promise<void> = async () => {};

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    dir = await mkdtemp(join(tmpdir(), "wrenn-agent-test-"));
    const logger = silentLogger();
    agent = createAgent({
      config: { agentDir: dir },
      logger,
      runtime: new NamespaceRuntime({
        agentDir: dir,
        envdDir: defaultEnvdDir(),
        logger,
        addressPool: new AddressPool(cidr),
      }),
    });
    await agent.start();
    server = await agent.listen(0, "127.0.0.1");
    client = agentClient(server.url);
  });

  afterAll(async () => {
    if (!agent) return;
    for (const s of agent.runtime.list()) await agent.runtime.destroy(s.id).catch(() => {});
    await agent.close();
    const leaks = await findLeaks(dir, ids);
    if (leaks.length === 0) await rm(dir, { recursive: true, force: true });
    await restoreHost();
    expect(leaks).toEqual([]);
  }, 120_000);

  it("serves HTTP/1.1 and h2c on one port", async () => {
    for (const version of ["1.1", "2"] as const) {
      const info = await agentClient(server.url, version).getHostInfo({});
      expect(info.runtimes).toEqual(["namespace"]);
      expect(info.defaultRuntime).toBe("namespace");
      expect(info.capacity?.vcpus).toBeGreaterThan(0);
    }
  });

  it("requires the bearer token when WRENN_AGENT_TOKEN is set", async () => {
    const guarded = createAgent({
      config: { agentDir: dir, token: "s3cret" },
      logger: silentLogger(),
      runtime: agent.runtime,
    });
    const listening = await guarded.listen(0, "127.0.0.1");
    try {
      const anonymous = agentClient(listening.url);
      expect(await codeOf(anonymous.listSandboxes({}))).toBe(Code.Unauthenticated);
      const proxied = await fetch(`${listening.url}/sandboxes/${prefix}-x/envd/health`);
      expect(proxied.status).toBe(401);
      const withToken = createClient(
        HostAgentService,
        createConnectTransport({
          baseUrl: listening.url,
          httpVersion: "1.1",
          interceptors: [
            (next) => (req) => {
              req.header.set("authorization", "Bearer s3cret");
              return next(req);
            },
          ],
        }),
      );
      expect((await withToken.listSandboxes({})).sandboxes).toEqual([]);
    } finally {
      await listening.close();
    }
  });

  it("embeds in-process through createRouterTransport (single-host mode)", async () => {
    const embedded = createClient(HostAgentService, createRouterTransport(agent.routes));
    const info = await embedded.getHostInfo({});
    expect(info.runtimes).toEqual(["namespace"]);
    expect(info.templates.map((t) => t.name)).toEqual(expect.any(Array));
    expect(await codeOf(embedded.getSandbox({ sandboxId: `${prefix}-nope` }))).toBe(Code.NotFound);
  });

  it("creates a sandbox, runs echo through the envd proxy, destroys it", async () => {
    const id = newId("echo");
    const { sandbox } = await client.createSandbox({
      sandboxId: id,
      template: TEMPLATE,
      vcpus: 1,
      memoryMb: 256,
      diskSizeMb: 64,
      metadata: { owner: "test" },
    });
    expect(sandbox).toMatchObject({
      sandboxId: id,
      state: SandboxState.RUNNING,
      runtime: "namespace",
    });
    const envd = new EnvdClient(`${server.url}/sandboxes/${id}/envd`);
    expect(await envd.sh("echo hello from $(hostname)")).toMatchObject({
      // One neutral hostname for every sandbox: a pooled one is launched before its id exists.
      stdout: `hello from ${SANDBOX_HOSTNAME}\n`,
      exitCode: 0,
    });
    const metrics = await client.getSandboxMetrics({ sandboxId: id });
    expect(metrics.metrics?.memLimitBytes).toBe(256n * 2n ** 20n);
    const listed = await client.listSandboxes({});
    expect(listed.sandboxes.map((s) => s.sandboxId)).toContain(id);

    await client.pauseSandbox({ sandboxId: id });
    const paused = await fetch(`${server.url}/sandboxes/${id}/envd/health`);
    expect(paused.status).toBe(409);
    await client.resumeSandbox({ sandboxId: id });

    await client.destroySandbox({ sandboxId: id });
    expect(await codeOf(client.getSandbox({ sandboxId: id }))).toBe(Code.NotFound);
    const gone = await fetch(`${server.url}/sandboxes/${id}/envd/health`);
    expect(gone.status).toBe(404);
    expect(await findLeaks(join(dir, "sandboxes", id), [id])).toEqual([]);
  });

  it("refuses bad input at the boundary", async () => {
    const base = { vcpus: 1, memoryMb: 256, diskSizeMb: 64 };
    for (const template of ["../etc", ".hidden", "a/b", "", "x".repeat(65)]) {
      expect(
        await codeOf(client.createSandbox({ ...base, sandboxId: newId("bad"), template })),
      ).toBe(Code.InvalidArgument);
    }
    for (const sandboxId of ["UPPER", "-lead", "trail-", "a_b", "a".repeat(64), "../x", ""]) {
      expect(await codeOf(client.createSandbox({ ...base, sandboxId, template: TEMPLATE }))).toBe(
        Code.InvalidArgument,
      );
      expect(await codeOf(client.getSandbox({ sandboxId }))).toBe(Code.InvalidArgument);
    }
    expect(
      await codeOf(client.createSandbox({ ...base, sandboxId: newId("x"), template: "nope" })),
    ).toBe(Code.NotFound);
    expect(
      await codeOf(
        client.createSandbox({
          ...base,
          sandboxId: newId("y"),
          template: TEMPLATE,
          runtime: "microvm",
        }),
      ),
    ).toBe(Code.InvalidArgument);
    const unknown = `${prefix}-unknown`;
    for (const call of [
      client.getSandbox({ sandboxId: unknown }),
      client.destroySandbox({ sandboxId: unknown }),
      client.pauseSandbox({ sandboxId: unknown }),
      client.resumeSandbox({ sandboxId: unknown }),
      client.pingSandbox({ sandboxId: unknown }),
      client.setSandboxTimeout({ sandboxId: unknown, timeoutSec: 1 }),
      client.getSandboxMetrics({ sandboxId: unknown }),
      client.createSnapshot({ sandboxId: unknown, name: "s" }),
      client.deleteSnapshot({ name: "no-such-snapshot" }),
    ]) {
      expect(await codeOf(call)).toBe(Code.NotFound);
    }
    expect(await codeOf(client.deleteSnapshot({ name: "../../etc" }))).toBe(Code.InvalidArgument);
    for (const limits of [{ memoryMb: 1 }, { diskSizeMb: 1 }, { vcpus: 4096 }]) {
      const req = { ...base, ...limits, sandboxId: newId("limits"), template: TEMPLATE };
      expect(await codeOf(client.createSandbox(req))).toBe(Code.InvalidArgument);
    }
    expect(agent.runtime.list()).toEqual([]);
  });

  it("auto-pauses an idle sandbox (timeout_sec=1), keeps it alive while pinged, resumes with its TTL", async () => {
    const idle = newId("idle");
    const pinged = newId("pinged");
    for (const sandboxId of [idle, pinged]) {
      await client.createSandbox({
        sandboxId,
        template: TEMPLATE,
        vcpus: 1,
        memoryMb: 256,
        diskSizeMb: 64,
        timeoutSec: 1,
      });
    }
    const deadline = Date.now() + 15_000;
    let list = await client.listSandboxes({});
    while (!list.autoPausedSandboxIds.includes(idle) && Date.now() < deadline) {
      await client.pingSandbox({ sandboxId: pinged });
      await sleep(300);
      list = await client.listSandboxes({});
    }
    expect(list.autoPausedSandboxIds).toEqual([idle]);
    const idleNow = list.sandboxes.find((s) => s.sandboxId === idle);
    expect(idleNow).toMatchObject({ state: SandboxState.PAUSED, autoPaused: true, timeoutSec: 1 });
    expect(list.sandboxes.find((s) => s.sandboxId === pinged)?.state).toBe(SandboxState.RUNNING);

    const { sandbox } = await client.resumeSandbox({ sandboxId: idle, timeoutSec: 2 });
    expect(sandbox).toMatchObject({
      state: SandboxState.RUNNING,
      autoPaused: false,
      timeoutSec: 2,
    });
    expect((await client.listSandboxes({})).autoPausedSandboxIds).toEqual([]);
    // Proxied traffic counts as activity too.
    const envd = new EnvdClient(`${server.url}/sandboxes/${pinged}/envd`);
    for (let i = 0; i < 8; i++) {
      await envd.sh("true");
      await sleep(300);
    }
    expect((await client.getSandbox({ sandboxId: pinged })).sandbox?.state).toBe(
      SandboxState.RUNNING,
    );
    for (const sandboxId of [idle, pinged]) await client.destroySandbox({ sandboxId });
  });

  it("a kill -9 of the agent mid-create and a restart leave no leak; running sandboxes keep running", async () => {
    const survivor = newId("survivor");
    await client.createSandbox({
      sandboxId: survivor,
      template: TEMPLATE,
      vcpus: 1,
      memoryMb: 256,
      diskSizeMb: 64,
    });
    await new EnvdClient(`${server.url}/sandboxes/${survivor}/envd`).sh("echo 1 > /tmp/alive");
    // The in-process agent lets go (as a process exit would); a child agent takes over the dir.
    await agent.close();
    const port = await listenPort();
    for (const [n, killAfterMs] of [10, 150].entries()) {
      const child = startAgentProcess(dir, port);
      try {
        const url = `http://127.0.0.1:${port}`;
        await waitForAgent(url);
        const id = newId(`killed${n}`);
        const creating = agentClient(url)
          .createSandbox({
            sandboxId: id,
            template: TEMPLATE,
            vcpus: 1,
            memoryMb: 256,
            diskSizeMb: 64,
          })
          .catch(() => undefined);
        const record = join(dir, "sandboxes", id, "sandbox.json");
        while (
          !(await access(record).then(
            () => true,
            () => false,
          ))
        )
          await sleep(2);
        await sleep(killAfterMs);
        child.kill("SIGKILL");
        await creating;
      } finally {
        child.kill("SIGKILL");
        await new Promise((resolve) =>
          child.exitCode !== null ? resolve(null) : child.once("exit", resolve),
        );
      }
    }
    // A fresh agent over the same directory: adopts the survivor, clears the half-made ones.
    agent = createAgent({
      config: { agentDir: dir },
      logger: silentLogger(),
      runtime: new NamespaceRuntime({
        agentDir: dir,
        envdDir: defaultEnvdDir(),
        logger: silentLogger(),
        addressPool: new AddressPool(cidr),
      }),
    });
    await agent.start();
    server = await agent.listen(0, "127.0.0.1");
    client = agentClient(server.url);
    const list = await client.listSandboxes({});
    expect(list.sandboxes.find((s) => s.sandboxId === survivor)?.state).toBe(SandboxState.RUNNING);
    expect(
      (await new EnvdClient(`${server.url}/sandboxes/${survivor}/envd`).sh("cat /tmp/alive"))
        .stdout,
    ).toBe("1\n");
    for (const s of list.sandboxes) await client.destroySandbox({ sandboxId: s.sandboxId });
    expect(await findLeaks(dir, ids)).toEqual([]);
  });
});

const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));

function startAgentProcess(agentDir: string, port: number): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", main], {
    stdio: ["ignore", "ignore", "inherit"],
    env: {
      ...process.env,
      WRENN_AGENT_DIR: agentDir,
      WRENN_AGENT_PORT: String(port),
      WRENN_AGENT_HOST: "127.0.0.1",
      WRENN_SANDBOX_CIDR: cidr,
      WRENN_LOG_LEVEL: "warn",
    },
  });
}

async function waitForAgent(url: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await agentClient(url).listSandboxes({});
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}
