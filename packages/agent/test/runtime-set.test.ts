import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { HostAgentService } from "@wrenn/proto/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentConfig, loadConfig } from "../src/config/index.js";
import { silentLogger } from "../src/logger/index.js";
import { AddressPool, keepHostFirewallState } from "../src/network/index.js";
import { type Agent, createAgent } from "../src/rpc/index.js";
import { createRuntimeSet } from "../src/runtime/index.js";
import { EnvdClient } from "./contract/envd-client.js";
import { findLeaks } from "./contract/leaks.js";
import { microVmSkipReason } from "./fixtures/microvm.js";

const skip = await microVmSkipReason();
const cidr = `10.238.${Math.floor(Math.random() * 250)}.0/24`;

/** An agent serving both runtimes over `dir`, as `wrenn agent start` would make it. */
async function startAgent(dir: string, pool: AddressPool): Promise<Agent> {
  const logger = silentLogger();
  const config: AgentConfig = {
    ...loadConfig({}),
    agentDir: dir,
    warmPool: [],
    runtimes: ["namespace", "microvm"],
    defaultRuntime: "namespace",
  };
  const agent = createAgent({
    config,
    logger,
    runtime: createRuntimeSet(config, logger, { addressPool: pool }),
  });
  await agent.start();
  return agent;
}

describe.skipIf(skip)("one agent, two runtimes", { timeout: 300_000 }, () => {
  const prefix = `rs${randomBytes(3).toString("hex")}`;
  const ns = `${prefix}-ns`;
  const vm = `${prefix}-vm`;
  const fromSnap = `${prefix}-vm2`;
  const snap = `${prefix}-snap`;
  let dir: string;
  let agent: Agent;
  let restoreHost: () => Promise<void> = async () => {};
  const pool = new AddressPool(cidr);
  const rpc = () => createClient(HostAgentService, createRouterTransport(agent.routes));

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    dir = await mkdtemp(join(tmpdir(), "wrenn-runtime-set-"));
    agent = await startAgent(dir, pool);
  }, 120_000);

  afterAll(async () => {
    for (const id of [ns, vm, fromSnap]) await agent.runtime.destroy(id).catch(() => {});
    await agent.runtime.deleteSnapshot(snap).catch(() => {});
    await agent.close();
    const leaks = await findLeaks(dir, [ns, vm, fromSnap]);
    await rm(dir, { recursive: true, force: true });
    await restoreHost();
    expect(leaks).toEqual([]);
  });

  it("routes creates by runtime, says which runtimes work, and adopts each sandbox back into its own runtime", async () => {
    const info = await rpc().getHostInfo({});
    expect(info.runtimes).toEqual(["namespace", "microvm"]);
    expect(info.defaultRuntime).toBe("namespace");
    expect(["kvm", "tcg"]).toContain(info.runtimeDetails.find((r) => r.name === "microvm")?.accel);

    const base = { template: "test-minimal", vcpus: 1, memoryMb: 256, diskSizeMb: 64 };
    const a = await rpc().createSandbox({ ...base, sandboxId: ns });
    const b = await rpc().createSandbox({ ...base, sandboxId: vm, runtime: "microvm" });
    expect(a.sandbox?.runtime).toBe("namespace");
    expect(b.sandbox?.runtime).toBe("microvm");
    const err = await rpc()
      .createSandbox({ ...base, sandboxId: `${prefix}-x`, runtime: "firecracker" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    // The same id cannot exist twice across runtimes.
    const dup = await rpc()
      .createSandbox({ ...base, sandboxId: ns, runtime: "microvm" })
      .catch((e: unknown) => ConnectError.from(e));
    expect((dup as ConnectError).code).toBe(Code.AlreadyExists);

    await rpc().pauseSandbox({ sandboxId: vm });
    // Restart: each runtime adopts its own record and leaves the other's alone.
    await agent.close();
    agent = await startAgent(dir, pool);
    const listed = await rpc().listSandboxes({});
    const byId = new Map(listed.sandboxes.map((s) => [s.sandboxId, s]));
    expect(byId.get(ns)?.runtime).toBe("namespace");
    expect(byId.get(vm)?.runtime).toBe("microvm");
    await rpc().resumeSandbox({ sandboxId: vm });
    for (const id of [ns, vm]) {
      const client = EnvdClient.direct(agent.runtime.get(id));
      expect((await client.sh("echo alive")).stdout).toBe("alive\n");
    }

    // A create from a microVM snapshot goes to the microvm runtime without being told.
    await rpc().createSnapshot({ sandboxId: vm, name: snap });
    const c = await rpc().createSandbox({ sandboxId: fromSnap, template: snap });
    expect(c.sandbox?.runtime).toBe("microvm");
    await rpc().destroySandbox({ sandboxId: fromSnap });
    await rpc().deleteSnapshot({ name: snap });
  });
});
