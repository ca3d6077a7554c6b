import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { detectCgroupLayout } from "../src/cgroup/index.js";
import { defaultEnvdDir } from "../src/config/index.js";
import { silentLogger } from "../src/logger/index.js";
import {
  AddressPool,
  hostIfName,
  keepHostFirewallState,
  listInternetMembers,
} from "../src/network/index.js";
import { NamespaceRuntime, SANDBOX_HOSTNAME } from "../src/runtime/index.js";
import { EnvdClient } from "./contract/envd-client.js";
import { findLeaks } from "./contract/leaks.js";

// A /24 of its own (see runtime-namespace.test.ts); the killed child gets the upper half.
const net = `10.213.${Math.floor(Math.random() * 120)}`;
const TEMPLATE = "test-minimal";
const POOL = [{ template: TEMPLATE, size: 2, diskSizeMb: 64 }];
const childScript = fileURLToPath(new URL("./contract/namespace-pool-child.ts", import.meta.url));

describe("namespace runtime warm pool", { timeout: 120_000 }, () => {
  const prefix = `wp${randomBytes(3).toString("hex")}`;
  let dir: string;
  let runtime: NamespaceRuntime;
  let restoreHost: () => Promise<void> = async () => {};
  /** Every resource id seen (pooled or claimed), for the leak check at the end. */
  const resourceIds = new Set<string>();
  const makeRuntime = () =>
    new NamespaceRuntime({
      agentDir: dir,
      envdDir: defaultEnvdDir(),
      logger: silentLogger(),
      addressPool: new AddressPool(`${net}.0/25`),
      warmPool: POOL,
    });
  /** Resource id → public id, from the records on disk. */
  const records = async () => {
    const out = new Map<string, { id: string; pooled: boolean }>();
    for (const rid of await readdir(join(dir, "sandboxes")).catch(() => [] as string[])) {
      const raw = await readFile(join(dir, "sandboxes", rid, "sandbox.json"), "utf8").catch(
        () => "",
      );
      if (!raw) continue;
      const record = JSON.parse(raw);
      out.set(rid, { id: record.id, pooled: record.pooled });
      resourceIds.add(rid);
    }
    return out;
  };
  const resourceOf = async (id: string) =>
    [...(await records())].find(([, r]) => r.id === id)?.[0] ?? "";
  const envd = (id: string) => EnvdClient.direct(runtime.get(id));

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    dir = await mkdtemp(join(tmpdir(), "wrenn-warm-"));
    runtime = makeRuntime();
    // The pool fills only from templates that exist.
    await runtime.templateStore.ensureTemplate(TEMPLATE);
    await runtime.adopt();
  });

  afterAll(async () => {
    const errors: unknown[] = [];
    const destroyAll = async () => {
      await records();
      for (const s of runtime.list()) await runtime.destroy(s.id).catch((e) => errors.push(e));
      await runtime.close().catch((e) => errors.push(e));
    };
    if (!runtime) return;
    await destroyAll();
    const leaks = await findLeaks(dir, resourceIds);
    if (leaks.length > 0) {
      // A failed test left debris: a fresh start cleans up what it can before we report.
      runtime = makeRuntime();
      await runtime.adopt();
      await destroyAll();
    }
    if (leaks.length === 0) await rm(dir, { recursive: true, force: true });
    await restoreHost();
    expect(errors).toEqual([]);
    expect(leaks).toEqual([]);
  }, 120_000);

  it("fills the pool in the background; pooled sandboxes are not listed", async () => {
    await runtime.warmPoolIdle();
    expect(runtime.warmPoolSize).toBe(2);
    expect(runtime.list()).toEqual([]);
    const pooled = [...(await records()).values()];
    expect(pooled).toHaveLength(2);
    expect(pooled.every((r) => r.pooled)).toBe(true);
  });

  it("a create claims a pooled sandbox with the requested limits, envs and internet access", async () => {
    const id = `${prefix}-claimed`;
    const info = await runtime.create({
      id,
      template: TEMPLATE,
      vcpus: 2,
      memoryMb: 256,
      diskSizeMb: 64,
      timeoutSec: 30,
      envs: { GREETING: "hello from the request" },
      metadata: { team: "t1" },
      allowInternetAccess: true,
    });
    // Claimed, not built: the pool is one short until the background refill.
    expect(runtime.warmPoolSize).toBe(1);
    expect(info).toMatchObject({
      id,
      state: "running",
      template: TEMPLATE,
      vcpus: 2,
      memoryMb: 256,
      diskSizeMb: 64,
      timeoutSec: 30,
      metadata: { team: "t1" },
      allowInternetAccess: true,
    });
    expect(runtime.list().map((s) => s.id)).toEqual([id]);
    const rid = await resourceOf(id);
    expect(rid).toMatch(/^pool-/);

    const res = await envd(id).sh('echo "$GREETING"; id -u; hostname');
    expect(res).toMatchObject({
      stdout: `hello from the request\n1000\n${SANDBOX_HOSTNAME}\n`,
      exitCode: 0,
    });
    const up = await envd(id).upload("/home/user/in.txt", "uploaded\n");
    expect(up.status).toBe(200);
    expect((await envd(id).sh("cat /home/user/in.txt")).stdout).toBe("uploaded\n");

    // The limits are the cgroup's, rewritten live.
    const layout = await detectCgroupLayout();
    if (layout.version === 1) {
      const base = (c: "memory" | "cpu") => `${layout.mounts[c]}/${layout.parent}/${rid}`;
      const read = async (file: string) => Number(await readFile(file, "utf8"));
      expect(await read(`${base("memory")}/memory.limit_in_bytes`)).toBe(256 * 2 ** 20);
      expect(await read(`${base("cpu")}/cpu.cfs_quota_us`)).toBe(
        2 * (await read(`${base("cpu")}/cpu.cfs_period_us`)),
      );
    } else {
      const base = `${layout.root}/${layout.parent}/${rid}`;
      expect((await readFile(`${base}/memory.max`, "utf8")).trim()).toBe(String(256 * 2 ** 20));
      expect((await readFile(`${base}/cpu.max`, "utf8")).trim()).toBe("200000 100000");
    }
    expect((await runtime.metrics(id)).memLimitBytes).toBe(256 * 2 ** 20);
    expect(await listInternetMembers()).toContain(hostIfName(rid));
  });

  it("refills the pool after a claim", async () => {
    await runtime.warmPoolIdle();
    expect(runtime.warmPoolSize).toBe(2);
    expect(runtime.list()).toHaveLength(1);
  });

  it("takes the cold path when no pooled sandbox fits (other disk size, snapshot)", async () => {
    const id = `${prefix}-cold`;
    await runtime.create({ id, template: TEMPLATE, vcpus: 1, memoryMb: 128, diskSizeMb: 32 });
    expect(runtime.warmPoolSize).toBe(2);
    expect(await resourceOf(id)).toBe(id);
    const snap = `${prefix}-snap`;
    await envd(id).sh("echo kept > /home/user/snap.txt");
    await runtime.snapshot(id, snap);
    const child = `${prefix}-child`;
    await runtime.create({ id: child, template: snap, vcpus: 1, memoryMb: 128, diskSizeMb: 64 });
    expect(runtime.warmPoolSize).toBe(2);
    expect((await envd(child).sh("cat /home/user/snap.txt")).stdout).toBe("kept\n");
    await runtime.destroy(child);
    await runtime.deleteSnapshot(snap);
    await runtime.destroy(id);
  });

  it("destroy of a claimed sandbox removes its pool-named resources", async () => {
    const id = `${prefix}-gone`;
    await runtime.warmPoolIdle();
    await runtime.create({ id, template: TEMPLATE, vcpus: 1, memoryMb: 128, diskSizeMb: 64 });
    const rid = await resourceOf(id);
    expect(rid).toMatch(/^pool-/);
    await runtime.destroy(id);
    expect(await findLeaks(join(dir, "sandboxes", rid), [rid, id])).toEqual([]);
  });

  it("close removes pooled sandboxes and keeps claimed ones; a restart adopts them", async () => {
    const id = `${prefix}-claimed`;
    await runtime.warmPoolIdle();
    const before = await records();
    const pooled = [...before].filter(([, r]) => r.pooled).map(([rid]) => rid);
    expect(pooled).toHaveLength(2);
    await envd(id).sh("echo before > /home/user/mark");
    await runtime.close();
    expect(await findLeaks(join(dir, "sandboxes", "nothing"), pooled)).toEqual([]);
    expect([...(await records()).values()].map((r) => r.id)).toEqual([id]);

    runtime = makeRuntime();
    const report = await runtime.adopt();
    expect(report).toMatchObject({ adopted: [id], cleaned: [], errors: [] });
    expect(runtime.get(id)).toMatchObject({ id, state: "running", vcpus: 2, memoryMb: 256 });
    expect((await envd(id).sh("cat /home/user/mark")).stdout).toBe("before\n");
    await runtime.warmPoolIdle();
    expect(runtime.warmPoolSize).toBe(2);
  });

  it("after a kill -9, the next start removes pooled sandboxes and adopts claimed ones", async () => {
    const id = `${prefix}-killed`;
    const childDir = await mkdtemp(join(tmpdir(), "wrenn-warm-kill-"));
    const child = spawn(process.execPath, ["--import", "tsx", childScript, childDir, id], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, WRENN_SANDBOX_CIDR: `${net}.128/25` },
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    let other: NamespaceRuntime | undefined;
    const seen = new Set<string>();
    try {
      const deadline = Date.now() + 60_000;
      while (!out.includes("ready") && Date.now() < deadline && child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(out).toBe("ready 2\n");
      child.kill("SIGKILL");
      await exited;
      for (const rid of await readdir(join(childDir, "sandboxes"))) seen.add(rid);
      expect(seen.size).toBe(3);

      other = new NamespaceRuntime({
        agentDir: childDir,
        envdDir: defaultEnvdDir(),
        logger: silentLogger(),
        addressPool: new AddressPool(`${net}.128/25`),
      });
      const report = await other.adopt();
      expect(report.errors).toEqual([]);
      expect(report.adopted).toEqual([id]);
      expect(report.cleaned).toHaveLength(2);
      expect(other.list().map((s) => s.id)).toEqual([id]);
      const client = EnvdClient.direct(other.get(id));
      expect((await client.sh("echo alive")).stdout).toBe("alive\n");
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      if (!other) {
        other = new NamespaceRuntime({
          agentDir: childDir,
          envdDir: defaultEnvdDir(),
          logger: silentLogger(),
          addressPool: new AddressPool(`${net}.128/25`),
        });
        await other.adopt();
      }
      for (const s of other.list()) await other.destroy(s.id);
      await other.close();
      const leaks = await findLeaks(childDir, [...seen, id]);
      if (leaks.length === 0) await rm(childDir, { recursive: true, force: true });
      expect(leaks).toEqual([]);
    }
  });
});
