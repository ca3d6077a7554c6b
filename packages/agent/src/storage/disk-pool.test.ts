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
});
