import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { destroySandboxDisk, listLoopDevices } from "./disk.js";
import { DiskPool } from "./disk-pool.js";
import { mountsUnder } from "./mountinfo.js";

// Real loop devices and mounts (root, e2fsprogs, util-linux).

let dir = "";

async function leftovers(): Promise<string[]> {
  const loops = (await listLoopDevices())
    .filter((l) => l.backingFile.startsWith(dir))
    .map((l) => l.device);
  return [...(await mountsUnder(dir)), ...loops];
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "wrenn-disk-pool-"));
});
afterAll(async () => {
  // Whatever a failed case left: the pool's disks are plain sandbox disks.
  await new DiskPool({ dir: join(dir, "pool") }).clear();
  await destroySandboxDisk(join(dir, "taken"));
  expect(await leftovers()).toEqual([]);
  await rm(dir, { recursive: true, force: true });
});

describe("DiskPool", () => {
  it("makes nothing after clear(), even for a take() still in flight at shutdown", async () => {
    const pool = new DiskPool({ dir: join(dir, "pool"), readyPerSize: 2 });
    pool.fill(16);
    // Shutdown while the refill runs: clear() waits for it, then removes its disks.
    expect(await pool.clear()).toEqual([]);
    // A create that was under way takes nothing and must not start a refill.
    expect(await pool.take(16, join(dir, "taken"))).toBe(false);
    pool.fill(16);
    await pool.settled();
    expect(existsSync(pool.dir)).toBe(false);
    expect(await leftovers()).toEqual([]);
    // The next start (adopt) prunes, and the pool fills again.
    expect(await pool.prune()).toEqual([]);
    pool.fill(16);
    await pool.settled();
    expect(await pool.ready(16)).toHaveLength(2);
    expect(await pool.clear()).toEqual([]);
    expect(await leftovers()).toEqual([]);
  });

  it("makes no disk while yieldTo holds it back (a create under way), then fills", async () => {
    let release: () => void = () => {};
    let held = true;
    const pool = new DiskPool({
      dir: join(dir, "pool"),
      readyPerSize: 2,
      yieldTo: () => (held ? new Promise<void>((r) => (release = r)) : Promise.resolve()),
    });
    try {
      pool.fill(16);
      await new Promise((r) => setTimeout(r, 300));
      expect(await pool.ready(16)).toEqual([]);
      held = false;
      release();
      await pool.settled();
      expect(await pool.ready(16)).toHaveLength(2);
    } finally {
      expect(await pool.clear()).toEqual([]);
    }
    expect(await leftovers()).toEqual([]);
  });

  it("keeps disks for at most maxSizes sizes, the most recently asked for", async () => {
    const pool = new DiskPool({ dir: join(dir, "pool"), readyPerSize: 1, maxSizes: 2 });
    try {
      // A tenant walking through sizes must not grow the pool past maxSizes × readyPerSize.
      for (const size of [16, 17, 18, 19]) pool.fill(size);
      await pool.settled();
      const counts = await Promise.all(
        [16, 17, 18, 19].map(async (s) => (await pool.ready(s)).length),
      );
      expect(counts).toEqual([0, 0, 1, 1]);
      // Taking an evicted size still works (cold), and makes it recent again.
      expect(await pool.take(16, join(dir, "taken"))).toBe(false);
      await pool.settled();
      expect((await pool.ready(16)).length).toBe(1);
      expect((await pool.ready(18)).length).toBe(0);
    } finally {
      expect(await pool.clear()).toEqual([]);
    }
    expect(await leftovers()).toEqual([]);
  });
});
