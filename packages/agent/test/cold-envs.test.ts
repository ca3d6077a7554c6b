import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultEnvdDir } from "../src/config/index.js";
import { silentLogger } from "../src/logger/index.js";
import { AddressPool, keepHostFirewallState } from "../src/network/index.js";
import { NamespaceRuntime } from "../src/runtime/index.js";
import { EnvdClient } from "./contract/envd-client.js";
import { findLeaks } from "./contract/leaks.js";

// Issue #13 finding 6: a cold create's envs reach only the user's processes, never envd's own
// environment (NODE_OPTIONS there would load code into envd, WRENN_ENVD_* would reconfigure it).
// Real namespaces, mounts and cgroups: needs root (CI runs as root).
const net = `10.248.${Math.floor(Math.random() * 250)}`;

describe.skipIf(process.getuid?.() !== 0)("cold create envs", { timeout: 120_000 }, () => {
  it("reach the user's processes, not envd", async () => {
    const restoreHost = await keepHostFirewallState();
    const dir = await mkdtemp(join(tmpdir(), "wrenn-cold-envs-"));
    const id = `ce${randomBytes(3).toString("hex")}`;
    const runtime = new NamespaceRuntime({
      agentDir: dir,
      envdDir: defaultEnvdDir(),
      logger: silentLogger(),
      addressPool: new AddressPool(`${net}.0/26`),
    });
    try {
      await runtime.adopt();
      // In envd's environment this kills envd at start (the module does not exist).
      await runtime.create({
        id,
        template: "test-minimal",
        vcpus: 1,
        memoryMb: 128,
        diskSizeMb: 16,
        envs: { NODE_OPTIONS: "--require /nonexistent/hook.js", GREETING: "hello" },
      });
      const res = await EnvdClient.direct(runtime.get(id)).sh('echo "$GREETING $NODE_OPTIONS"');
      expect(res).toMatchObject({ stdout: "hello --require /nonexistent/hook.js\n", exitCode: 0 });
      await runtime.destroy(id);
      expect(await findLeaks(join(dir, "sandboxes", id), [id])).toEqual([]);
    } finally {
      for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
      await runtime.close();
      await rm(dir, { recursive: true, force: true });
      await restoreHost();
    }
  });
});
