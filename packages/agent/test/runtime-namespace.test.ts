import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { defaultEnvdDir } from "../src/config/index.js";
import { silentLogger } from "../src/logger/index.js";
import { AddressPool, keepHostFirewallState } from "../src/network/index.js";
import { NamespaceRuntime } from "../src/runtime/index.js";
import { findLeaks } from "./contract/leaks.js";
import { crashNamespaceCreate } from "./contract/namespace-crash-create.js";
import { runtimeContract } from "./contract/runtime-contract.js";

// A /24 of its own, so sandboxes of other suites running at the same time never share an
// address with ours (one agent per host owns the whole pool in production).
const net = `10.213.${128 + Math.floor(Math.random() * 120)}`;
const cidr = `${net}.0/24`;
let crashes = 0;

// Real namespaces, mounts, loop devices and cgroups: needs root (CI runs as root).
runtimeContract("namespace", {
  template: "test-minimal",
  makeRuntime: (agentDir) =>
    new NamespaceRuntime({
      agentDir,
      envdDir: defaultEnvdDir(),
      logger: silentLogger(),
      addressPool: new AddressPool(cidr),
    }),
  crashCreate: (agentDir, id, killAfterMs) =>
    // Each crashed agent gets its own /28 of our /24: it cannot know what the others left.
    crashNamespaceCreate(agentDir, id, killAfterMs, {
      WRENN_SANDBOX_CIDR: `${net}.${128 + 16 * (crashes++ % 8)}/28`,
    }),
});

// Again with a warm pool: after the first create builds the template, creates claim pooled
// sandboxes (named by resource ids of their own) and everything above must hold the same.
runtimeContract("namespace with a warm pool", {
  template: "test-minimal",
  makeRuntime: (agentDir) =>
    new NamespaceRuntime({
      agentDir,
      envdDir: defaultEnvdDir(),
      logger: silentLogger(),
      addressPool: new AddressPool(`${net}.0/26`),
      warmPool: [{ template: "test-minimal", size: 1, diskSizeMb: 64 }],
    }),
});

describe("namespace runtime", { timeout: 60_000 }, () => {
  it("marks a sandbox whose processes died as error, and destroy still removes everything", async () => {
    const restoreHost = await keepHostFirewallState();
    const dir = await mkdtemp(join(tmpdir(), "wrenn-ns-"));
    const id = `ns${randomBytes(3).toString("hex")}-dead`;
    const runtime = new NamespaceRuntime({
      agentDir: dir,
      envdDir: defaultEnvdDir(),
      logger: silentLogger(),
      addressPool: new AddressPool(`${net}.64/26`),
    });
    try {
      await runtime.adopt();
      await runtime.create({
        id,
        template: "test-minimal",
        vcpus: 1,
        memoryMb: 128,
        diskSizeMb: 16,
      });
      const record = JSON.parse(await readFile(join(dir, "sandboxes", id, "sandbox.json"), "utf8"));
      process.kill(record.process.pid, "SIGKILL");
      const deadline = Date.now() + 15_000;
      while (runtime.get(id).state !== "error" && Date.now() < deadline) await sleep(100);
      expect(runtime.get(id)).toMatchObject({ state: "error", error: expect.any(String) });
      await runtime.destroy(id);
      expect(await findLeaks(join(dir, "sandboxes", id), [id])).toEqual([]);
    } finally {
      for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
      await runtime.close();
      const leaks = await findLeaks(dir, [id]);
      if (leaks.length === 0) await rm(dir, { recursive: true, force: true });
      await restoreHost();
      expect(leaks).toEqual([]);
    }
  });
});
