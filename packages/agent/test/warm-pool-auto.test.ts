import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultEnvdDir } from "../src/config/index.js";
import { silentLogger } from "../src/logger/index.js";
import { AddressPool, keepHostFirewallState } from "../src/network/index.js";
import { NamespaceRuntime } from "../src/runtime/index.js";
import { EnvdClient } from "./contract/envd-client.js";
import { findLeaks } from "./contract/leaks.js";

// The default pool (`auto`) on real sandboxes: one of the default template once the runtime is
// up, and one of a snapshot once it has been used, gone when the snapshot is deleted.
const net = `10.213.${128 + Math.floor(Math.random() * 120)}`;
const TEMPLATE = "test-minimal";
const DISK_MB = 64;

describe("namespace runtime auto warm pool", { timeout: 120_000 }, () => {
  const prefix = `wa${randomBytes(3).toString("hex")}`;
  let dir: string;
  let runtime: NamespaceRuntime;
  let restoreHost: () => Promise<void> = async () => {};
  const resourceIds = new Set<string>();
  /** The sandbox records on disk, with their resource ids. */
  const onDisk = async () => {
    const out: { rid: string; id: string; pooled: boolean; template: string }[] = [];
    for (const rid of await readdir(join(dir, "sandboxes")).catch(() => [] as string[])) {
      const raw = await readFile(join(dir, "sandboxes", rid, "sandbox.json"), "utf8").catch(
        () => "",
      );
      if (!raw) continue;
      resourceIds.add(rid);
      out.push({ rid, ...JSON.parse(raw) });
    }
    return out;
  };
  /** Public id → resource id. */
  const records = async () => new Map((await onDisk()).map((r) => [r.id, r.rid]));
  /** Ready (pooled, unclaimed) sandboxes of `template`. */
  const pooledOf = async (template: string) =>
    (await onDisk()).filter((r) => r.pooled && r.template === template).length;

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    dir = await mkdtemp(join(tmpdir(), "wrenn-warm-auto-"));
    runtime = new NamespaceRuntime({
      agentDir: dir,
      envdDir: defaultEnvdDir(),
      logger: silentLogger(),
      addressPool: new AddressPool(`${net}.0/24`),
      warmPool: { mode: "auto", memoryMb: 512, defaultTemplate: TEMPLATE },
    });
    await runtime.adopt();
  });

  afterAll(async () => {
    const errors: unknown[] = [];
    if (runtime) {
      await records();
      for (const s of runtime.list()) await runtime.destroy(s.id).catch((e) => errors.push(e));
      await runtime.close().catch((e) => errors.push(e));
    }
    const leaks = dir ? await findLeaks(dir, resourceIds) : [];
    if (leaks.length === 0 && dir) await rm(dir, { recursive: true, force: true });
    await restoreHost();
    expect(errors).toEqual([]);
    expect(leaks).toEqual([]);
  }, 120_000);

  it("keeps one of the default template once the template exists", async () => {
    // The template is built after the start, as a single-host server does.
    await runtime.templateStore.ensureTemplate(TEMPLATE);
    await runtime.warmPoolIdle();
    expect(runtime.warmPoolSize).toBe(1);
  });

  it("keeps one of a snapshot once used, and none once it is deleted", async () => {
    const source = `${prefix}-src`;
    const snap = `${prefix}-snap`;
    const spec = { vcpus: 1, memoryMb: 128, diskSizeMb: DISK_MB };
    await runtime.create({ id: source, template: TEMPLATE, ...spec });
    await EnvdClient.direct(runtime.get(source)).sh("echo kept > /home/user/snap.txt");
    await runtime.snapshot(source, snap);
    await runtime.destroy(source);

    // The first create from it is cold and counts as demand: one is made ready behind it.
    const first = `${prefix}-first`;
    await runtime.create({ id: first, template: snap, ...spec });
    expect((await records()).get(first)).toBe(first);
    await runtime.warmPoolIdle();
    const second = `${prefix}-second`;
    await runtime.create({ id: second, template: snap, ...spec });
    expect((await records()).get(second)).toMatch(/^pool-/);
    const client = EnvdClient.direct(runtime.get(second));
    expect((await client.sh("cat /home/user/snap.txt")).stdout).toBe("kept\n");
    await runtime.destroy(first);
    await runtime.destroy(second);

    // Its refills are ready (two, if the two creates came within a second: a burst): deleting
    // the snapshot takes them along, and nothing else.
    await runtime.warmPoolIdle();
    const pooledBefore = runtime.warmPoolSize;
    const ready = await pooledOf(snap);
    expect(ready).toBeGreaterThanOrEqual(1);
    await runtime.deleteSnapshot(snap);
    expect(runtime.warmPoolSize).toBe(pooledBefore - ready);
    expect(await pooledOf(snap)).toBe(0);
    expect((await runtime.listSnapshots()).map((s) => s.name)).not.toContain(snap);
  });

  it("grows a template's pool to a burst of creates, for the next one", async () => {
    const template = `${prefix}-burst`;
    const source = `${prefix}-bsrc`;
    const spec = { vcpus: 1, memoryMb: 128, diskSizeMb: DISK_MB };
    await runtime.create({ id: source, template: TEMPLATE, ...spec });
    await runtime.snapshot(source, template);
    await runtime.destroy(source);
    const ids = [1, 2, 3].map((i) => `${prefix}-b${i}`);
    await Promise.all(ids.map((id) => runtime.create({ id, template, ...spec })));
    for (const id of ids) await runtime.destroy(id);
    await runtime.warmPoolIdle();
    expect(await pooledOf(template)).toBe(3);
    // The next burst claims all three.
    const next = ids.map((id) => `${id}-again`);
    await Promise.all(next.map((id) => runtime.create({ id, template, ...spec })));
    const byId = await records();
    expect(next.map((id) => byId.get(id))).toEqual(next.map(() => expect.stringMatching(/^pool-/)));
    for (const id of next) await runtime.destroy(id);
    await runtime.deleteSnapshot(template);
    expect(await pooledOf(template)).toBe(0);
  });
});
