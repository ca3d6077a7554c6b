import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listenHttp } from "@wrenn/envd";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultEnvdDir } from "../src/config/index.js";
import { AgentError } from "../src/errors.js";
import { readProcStat } from "../src/launcher/index.js";
import { silentLogger } from "../src/logger/index.js";
import { AddressPool, keepHostFirewallState } from "../src/network/index.js";
import { EnvdProxy } from "../src/proxy/index.js";
import { MicroVmRuntime, type SandboxSpec } from "../src/runtime/index.js";
import { EnvdClient } from "./contract/envd-client.js";
import { findLeaks } from "./contract/leaks.js";
import { crashNamespaceCreate } from "./contract/namespace-crash-create.js";
import { runtimeContract } from "./contract/runtime-contract.js";
import { microVmSkipReason } from "./fixtures/microvm.js";

// A /24 of its own inside 10.236.0.0/16 (or the /16 of WRENN_SANDBOX_CIDR, for parallel runs),
// so other suites never share an address with ours.
const net16 = process.env.WRENN_SANDBOX_CIDR?.split(".").slice(0, 2).join(".") || "10.236";
const net = `${net16}.${Math.floor(Math.random() * 250)}`;
const cidr = `${net}.0/24`;
let crashes = 0;
const skip = await microVmSkipReason();
if (skip) console.warn(`microvm suites skipped: ${skip}`);

const makeRuntime = (agentDir: string) =>
  new MicroVmRuntime({
    agentDir,
    envdDir: defaultEnvdDir(),
    logger: silentLogger(),
    addressPool: new AddressPool(cidr),
  });

// Real QEMU (TCG on hosts without KVM, so every step is slow): generous timeouts, few cases.
describe.skipIf(skip)("microvm", { timeout: 240_000 }, () => {
  runtimeContract("microvm", {
    template: "test-minimal",
    makeRuntime,
    snapshotLimitsRefused: true,
    observeMs: 4_000,
    diskSizeMb: 512,
    // Each crashed create gets a /28 of its own in our /24: it cannot know what the others left.
    crashCreate: (agentDir, id, killAfterMs) =>
      crashNamespaceCreate(
        agentDir,
        id,
        killAfterMs,
        { WRENN_SANDBOX_CIDR: `${net}.${128 + 16 * (crashes++ % 8)}/28` },
        "microvm",
      ),
  });

  describe("microvm lifecycle", { timeout: 240_000 }, () => {
    const prefix = `mv${randomBytes(3).toString("hex")}`;
    let dir: string;
    let runtime: MicroVmRuntime;
    let restoreHost: () => Promise<void> = async () => {};
    const ids = new Set<string>();
    const spec = (what: string, more: Partial<SandboxSpec> = {}): SandboxSpec => {
      ids.add(`${prefix}-${what}`);
      return specOf(what, more);
    };
    const specOf = (what: string, more: Partial<SandboxSpec>): SandboxSpec => ({
      id: `${prefix}-${what}`,
      template: "test-minimal",
      vcpus: 1,
      memoryMb: 256,
      diskSizeMb: 0,
      ...more,
    });
    const envd = (id: string) => EnvdClient.direct(runtime.get(id));
    // A zombie waiting for its reaper holds no memory: gone as far as this test goes.
    const qemuAlive = async (pidFile: string) => {
      const stat = await readProcStat(Number(await readFile(pidFile, "utf8")));
      return stat !== undefined && stat.state !== "Z" && stat.state !== "X";
    };

    beforeAll(async () => {
      restoreHost = await keepHostFirewallState();
      dir = await mkdtemp(join(tmpdir(), "wrenn-microvm-"));
      runtime = makeRuntime(dir);
      await runtime.adopt();
    });

    afterAll(async () => {
      // Everything made here goes, whatever failed above.
      for (const s of runtime?.list() ?? []) await runtime.destroy(s.id).catch(() => {});
      await runtime?.close();
      const leaks = await findLeaks(dir, ids);
      await rm(dir, { recursive: true, force: true });
      await restoreHost();
      expect(leaks).toEqual([]);
    });

    it("pause ends QEMU (its memory freed) and keeps a process, its open file and a TCP listener through pause/resume cycles", async () => {
      const { id } = await runtime.create(spec("cycles"));
      const client = envd(id);
      const started = await client.sh(
        [
          "(exec 3>/tmp/held; i=0; while true; do i=$((i+1)); echo $i >&3; echo $i > /tmp/count; sleep 0.2; done) >/dev/null 2>&1 &",
          "echo $! > /tmp/writer.pid",
          `node -e "require('net').createServer((s) => s.end('pong')).listen(7000)" >/dev/null 2>&1 &`,
          "echo $! > /tmp/listener.pid",
        ].join("\n"),
      );
      expect(started.exitCode).toBe(0);
      const running = await runtime.metrics(id);
      expect(running.memUsedBytes).toBeGreaterThan(32 * 2 ** 20);
      const pidFile = join(dir, "sandboxes", id, "vm", "qemu.pid");
      const cycles = Number(process.env.WRENN_MICROVM_CYCLES || 20);
      for (let i = 0; i < cycles; i++) {
        expect(runtime.get(id).state).toBe("running");
        await runtime.pause(id);
        expect(existsSync(pidFile) && (await qemuAlive(pidFile))).toBe(false);
        // QEMU is gone: the paused VM holds no host memory, only its files.
        expect((await runtime.metrics(id)).memUsedBytes).toBe(0);
        await runtime.resume(id);
      }
      const check = await client.sh(
        [
          "kill -0 $(cat /tmp/writer.pid) && kill -0 $(cat /tmp/listener.pid)",
          // The file the writer holds open kept growing across the pauses.
          "test $(wc -l < /tmp/held) -ge 3",
          `node -e "require('net').connect(7000, '127.0.0.1').on('data', (d) => process.stdout.write(d))"`,
        ].join(" && "),
      );
      expect(check).toMatchObject({ exitCode: 0, stdout: "pong" });
      // The guest clock was set from the host's after the last resume.
      const date = await client.sh("date +%s");
      expect(Math.abs(Number(date.stdout) - Date.now() / 1000)).toBeLessThan(10);
      await runtime.destroy(id);
      expect(existsSync(join(dir, "sandboxes", id))).toBe(false);
    });

    it("two sandboxes from one snapshot diverge; other limits than the snapshot's are refused", async () => {
      const { id: source } = await runtime.create(spec("src"));
      await envd(source).sh("echo original > /tmp/mark");
      const snap = `${prefix}-snap`;
      const info = await runtime.snapshot(source, snap);
      expect(info).toMatchObject({ name: snap, vcpus: 1, memoryMb: 256, sourceSandboxId: source });
      const a = await runtime.create(spec("a", { template: snap }));
      const b = await runtime.create(spec("b", { template: snap }));
      expect(a.envdAddress).not.toBe(b.envdAddress);
      await envd(a.id).sh("echo from-a > /tmp/mark");
      expect((await envd(b.id).sh("cat /tmp/mark")).stdout).toBe("original\n");
      expect((await envd(a.id).sh("cat /tmp/mark")).stdout).toBe("from-a\n");
      expect((await envd(source).sh("cat /tmp/mark")).stdout).toBe("original\n");
      const err = await runtime
        .create(spec("big", { template: snap, memoryMb: 512 }))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgentError);
      expect((err as AgentError).code).toBe("invalid_argument");
      expect((err as AgentError).message).toMatch(/memory_mb is fixed at 256/);
      await expect(runtime.deleteSnapshot(snap)).rejects.toThrow(/in use/);
      for (const id of [a.id, b.id, source]) await runtime.destroy(id);
      await runtime.deleteSnapshot(snap);
    });

    it("gives every restore its own envd token: others' and none are refused, the proxy's works through pause/resume and adoption", async () => {
      const { id: source } = await runtime.create(spec("tsrc"));
      const snap = `${prefix}-tsnap`;
      await runtime.snapshot(source, snap);
      const a = await runtime.create(spec("ta", { template: snap }));
      const b = await runtime.create(spec("tb", { template: snap }));
      const snapshotToken = async (name: string) => {
        const file = join(dir, "microvm", "snapshots", name, "snapshot.json");
        expect((await stat(file)).mode & 0o077).toBe(0);
        return JSON.parse(await readFile(file, "utf8")).envd_access_token as string;
      };
      const ready = (await readdir(join(dir, "microvm", "snapshots"))).find((n) =>
        n.startsWith("ready-test-minimal-1x256x"),
      );
      const tokens = [
        await snapshotToken(ready!),
        runtime.get(source).envdAccessToken,
        a.envdAccessToken,
        b.envdAccessToken,
      ];
      for (const token of tokens) expect(token).toMatch(/^[0-9a-f]{64}$/);
      expect(new Set(tokens).size).toBe(4);
      // A user's snapshot keeps the token its source had (its envd's memory holds it).
      expect(await snapshotToken(snap)).toBe(runtime.get(source).envdAccessToken);

      // Straight to a's envd: a process start without a token, with b's, with the snapshot's:
      // 401. With its own: it runs.
      const start = (token?: string) =>
        fetch(`http://${a.envdAddress}/process.Process/Start`, {
          method: "POST",
          headers: {
            "content-type": "application/connect+json",
            ...(token && { "x-access-token": token }),
          },
          body: "{}",
        });
      for (const token of [undefined, b.envdAccessToken, runtime.get(source).envdAccessToken]) {
        const res = await start(token);
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({ code: "unauthenticated" });
      }
      expect((await EnvdClient.direct(a).sh("echo direct")).stdout).toBe("direct\n");

      // Through the agent's proxy, which adds the token from the sandbox's record.
      const proxy = new EnvdProxy({
        lookup: (id) => runtime.get(id),
        onActivity: () => () => {},
        logger: silentLogger(),
      });
      const server = await listenHttp(
        (req, res) => {
          if (!proxy.handle(req, res)) {
            res.writeHead(404);
            res.end();
          }
        },
        { port: 0, host: "127.0.0.1" },
      );
      try {
        const viaProxy = (id: string) =>
          new EnvdClient(`http://127.0.0.1:${server.port}/sandboxes/${id}/envd`);
        expect((await viaProxy(a.id).sh("echo proxied")).stdout).toBe("proxied\n");
        await runtime.pause(a.id);
        await runtime.resume(a.id);
        expect(runtime.get(a.id).envdAccessToken).toBe(a.envdAccessToken);
        expect((await viaProxy(a.id).sh("echo resumed")).stdout).toBe("resumed\n");
        // An agent restart: the new runtime adopts the VMs with the tokens from their records.
        await runtime.close();
        runtime = makeRuntime(dir);
        await runtime.adopt();
        expect(runtime.get(b.id).envdAccessToken).toBe(b.envdAccessToken);
        for (const id of [a.id, b.id]) {
          expect((await viaProxy(id).sh("echo adopted")).stdout).toBe("adopted\n");
        }
        expect((await start()).status).toBe(401);
      } finally {
        await server.close();
        proxy.close();
      }
      for (const id of [a.id, b.id, source]) await runtime.destroy(id);
      await runtime.deleteSnapshot(snap);
    });
  });
});
