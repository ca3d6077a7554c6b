import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runCommand } from "../src/network/index.js";
import {
  cleanupStorageDebris,
  createSandboxDisk,
  DiskPool,
  destroySandboxDisk,
  diskUsage,
  freezeUpperToLayer,
  listLoopDevices,
  listStorageDebris,
  mountRootfs,
  mountsUnder,
  openSandboxDisk,
  readMountInfo,
  type SandboxDisk,
  unmount,
  unmountRootfs,
} from "../src/storage/index.js";

// Real processes, namespaces and mounts on a 2-core machine shared with other suites.
vi.setConfig({ testTimeout: 30_000, hookTimeout: 60_000 });

let stateDir = "";
let lower = "";
const children: ChildProcess[] = [];
const sandboxDir = (name: string) => join(stateDir, "sandboxes", name);

async function leftovers(
  dir: string,
): Promise<{ mounts: string[]; loops: string[]; exists: boolean }> {
  return {
    mounts: await mountsUnder(dir),
    loops: (await listLoopDevices())
      .filter((l) => l.backingFile.startsWith(dir))
      .map((l) => l.device),
    exists: existsSync(dir),
  };
}

const clean = { mounts: [], loops: [], exists: false };

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), "wrenn-storage-"));
  await mkdir(join(stateDir, "sandboxes"));
  lower = join(stateDir, "layers", "base");
  await mkdir(join(lower, "dir"), { recursive: true });
  await writeFile(join(lower, "a.txt"), "from lower\n");
  await writeFile(join(lower, "keep.txt"), "kept\n");
  await writeFile(join(lower, "dir", "x"), "x\n");
});

afterAll(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  const names = await readdir(join(stateDir, "sandboxes")).catch(() => [] as string[]);
  for (const name of names) expect(await destroySandboxDisk(sandboxDir(name))).toEqual([]);
  await cleanupStorageDebris(await listStorageDebris(stateDir));
  // Leak check: no mount, loop device or file of this suite is left.
  expect(await leftovers(stateDir)).toMatchObject({ mounts: [], loops: [] });
  await rm(stateDir, { recursive: true, force: true });
  expect(existsSync(stateDir)).toBe(false);
});

describe("sandbox disk", () => {
  let disk: SandboxDisk;
  let merged = "";

  beforeAll(async () => {
    disk = await createSandboxDisk({ dir: sandboxDir("one"), diskSizeMb: 64 });
    merged = await mountRootfs(disk, [lower]);
  });

  it("shows lower files through the overlay and writes to the upper dir", async () => {
    expect(await readFile(join(merged, "a.txt"), "utf8")).toBe("from lower\n");
    await writeFile(join(merged, "new.txt"), "new\n");
    expect(await readFile(join(disk.upperDir, "new.txt"), "utf8")).toBe("new\n");
    expect(existsSync(join(lower, "new.txt"))).toBe(false);
  });

  it("reports allocated blocks × 512, not the apparent size", async () => {
    const before = await diskUsage(disk.imagePath);
    const { stdout } = await runCommand("stat", ["-c", "%b %B %s", disk.imagePath]);
    const [blocks, blockSize, size] = stdout.trim().split(" ").map(Number);
    expect(before.allocatedBytes).toBe(blocks! * blockSize!);
    expect(before.apparentBytes).toBe(size);
    expect(before.limitBytes).toBe(64 * 1024 * 1024);
    expect(before.allocatedBytes).toBeLessThan(before.limitBytes! / 4);

    await runCommand("dd", [
      "if=/dev/urandom",
      `of=${merged}/ten`,
      "bs=1M",
      "count=10",
      "conv=fsync",
    ]);
    const after = await diskUsage(disk.imagePath);
    expect(after.allocatedBytes - before.allocatedBytes).toBeGreaterThanOrEqual(10 * 1024 * 1024);
    expect(after.apparentBytes).toBe(before.apparentBytes);

    // Deleting frees host blocks again (discard punches holes in the image).
    await rm(join(merged, "ten"));
    await runCommand("sync", ["-f", disk.mountPoint]);
    const freed = await diskUsage(disk.imagePath);
    expect(freed.allocatedBytes).toBeLessThan(after.allocatedBytes - 5 * 1024 * 1024);
  });

  it("stops writes at the disk size with ENOSPC, without growing past it on the host", async () => {
    const fill = runCommand("dd", [
      "if=/dev/zero",
      `of=${merged}/fill`,
      "bs=1M",
      "count=200",
      "conv=fsync",
    ]);
    await expect(fill).rejects.toThrow(/No space left on device/);
    const written = (await stat(join(merged, "fill"))).size;
    expect(written).toBeLessThanOrEqual(64 * 1024 * 1024);
    expect(written).toBeGreaterThan(40 * 1024 * 1024);
    const usage = await diskUsage(disk.imagePath);
    expect(usage.allocatedBytes).toBeLessThanOrEqual(usage.limitBytes!);
    await rm(join(merged, "fill"));
  });

  it("replaces a file without writing it back in the writer's call (noauto_da_alloc)", async () => {
    // ext4's default starts a file's writeback when it replaces another (a crash must not leave it
    // empty): a sandbox's disk never outlives a host crash, so the writer need not pay for it.
    const mount = (await readMountInfo()).find((m) => m.mountPoint === disk.mountPoint);
    expect(mount?.fsType).toBe("ext4");
    const loop = mount!.source.replace("/dev/", "");
    const sectorsWritten = async () =>
      Number((await readFile(`/sys/block/${loop}/stat`, "utf8")).trim().split(/\s+/)[6]);
    const replaced = join(merged, "replaced");
    await writeFile(replaced, "old\n");
    await runCommand("sync", ["-f", disk.mountPoint]);
    const before = await sectorsWritten();
    const size = 8 * 1024 * 1024;
    await writeFile(`${replaced}.tmp`, Buffer.alloc(size, 1));
    await rename(`${replaced}.tmp`, replaced);
    // With ext4's default, the 8 MiB are on their way to the loop device by now.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await sectorsWritten()) - before).toBeLessThan(size / 512 / 4);
    expect((await stat(replaced)).size).toBe(size);
    await rm(replaced);
  });

  it("is re-opened for adoption, remounting a lost disk mount", async () => {
    expect(await openSandboxDisk(sandboxDir("nothing"))).toBeUndefined();
    const opened = await openSandboxDisk(disk.dir);
    expect(opened).toEqual(disk);

    const other = await createSandboxDisk({ dir: sandboxDir("adopt"), diskSizeMb: 16 });
    await writeFile(join(other.upperDir, "kept"), "yes");
    await unmount(other.mountPoint);
    const reopened = await openSandboxDisk(other.dir);
    expect(await readFile(join(reopened!.upperDir, "kept"), "utf8")).toBe("yes");
    expect(await destroySandboxDisk(other.dir)).toEqual([]);
  });

  it("refuses a second disk in the same dir", async () => {
    await expect(createSandboxDisk({ dir: disk.dir, diskSizeMb: 16 })).rejects.toMatchObject({
      code: "already_exists",
    });
  });

  it("destroys everything, lazily when busy, idempotently", async () => {
    const busy = await createSandboxDisk({ dir: sandboxDir("busy"), diskSizeMb: 16 });
    const root = await mountRootfs(busy, [lower]);
    // A process with its cwd in the rootfs keeps the mounts busy.
    const child = spawn("sleep", ["30"], { cwd: root });
    children.push(child);
    await new Promise((resolve) => child.on("spawn", resolve));
    expect(await destroySandboxDisk(busy.dir)).toEqual([]);
    // Mounts and files are gone at once; the loop device is only marked to detach (autoclear)
    // while the lazily unmounted filesystem is still in use.
    expect(await leftovers(busy.dir)).toMatchObject({ mounts: [], exists: false });
    child.kill("SIGKILL");
    await new Promise((resolve) => child.on("exit", resolve));
    // Once the last user is gone the lazily detached loop device goes too.
    for (let i = 0; i < 100 && (await leftovers(busy.dir)).loops.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await leftovers(busy.dir)).toEqual(clean);
    expect(await destroySandboxDisk(busy.dir)).toEqual([]);
  });
});

describe("destroy error collection", () => {
  it("goes on after a failed step and returns the error", async () => {
    const disk = await createSandboxDisk({ dir: sandboxDir("pinned"), diskSizeMb: 16 });
    await mountRootfs(disk, [lower]);
    const pinned = join(disk.dir, "pinned");
    await writeFile(pinned, "");
    await runCommand("chattr", ["+i", pinned]); // rm cannot delete an immutable file
    try {
      const errors = await destroySandboxDisk(disk.dir);
      expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/^remove .*pinned/)]);
      // Unmounting and detaching still happened.
      expect(await leftovers(disk.dir)).toEqual({ mounts: [], loops: [], exists: true });
    } finally {
      await runCommand("chattr", ["-i", pinned]);
    }
    expect(await destroySandboxDisk(disk.dir)).toEqual([]);
    expect(await leftovers(disk.dir)).toEqual(clean);
  });
});

describe("snapshot layers", () => {
  it("keeps whiteouts and opaque dirs: a deleted lower file stays deleted", async () => {
    const disk = await createSandboxDisk({ dir: sandboxDir("snap-src"), diskSizeMb: 32 });
    const merged = await mountRootfs(disk, [lower]);
    await rm(join(merged, "a.txt"));
    await rm(join(merged, "dir"), { recursive: true });
    await mkdir(join(merged, "dir"));
    await writeFile(join(merged, "dir", "y"), "y\n");
    await writeFile(join(merged, "added.txt"), "added\n");
    await runCommand("ln", ["-s", "keep.txt", join(merged, "link")]);
    await runCommand("chown", ["1000:1000", join(merged, "added.txt")]);
    await runCommand("chmod", ["640", join(merged, "added.txt")]);
    // The upper dir holds a whiteout for a.txt: a 0/0 character device.
    expect((await lstat(join(disk.upperDir, "a.txt"))).isCharacterDevice()).toBe(true);

    const layer = join(stateDir, "layers", "snap1");
    await freezeUpperToLayer(disk.upperDir, layer);
    const whiteout = await lstat(join(layer, "a.txt"));
    expect(whiteout.isCharacterDevice()).toBe(true);
    expect(whiteout.rdev).toBe(0);
    const added = await lstat(join(layer, "added.txt"));
    expect([added.uid, added.gid, added.mode & 0o777]).toEqual([1000, 1000, 0o640]);
    expect((await lstat(join(layer, "link"))).isSymbolicLink()).toBe(true);
    await expect(freezeUpperToLayer(disk.upperDir, layer)).rejects.toMatchObject({
      code: "already_exists",
    });

    // The source sandbox keeps running on its disk.
    await writeFile(join(merged, "after.txt"), "after\n");

    const child = await createSandboxDisk({ dir: sandboxDir("snap-child"), diskSizeMb: 32 });
    const root = await mountRootfs(child, [layer, lower]);
    expect(existsSync(join(root, "a.txt"))).toBe(false);
    expect(await readdir(join(root, "dir"))).toEqual(["y"]);
    expect(await readFile(join(root, "keep.txt"), "utf8")).toBe("kept\n");
    expect(await readFile(join(root, "added.txt"), "utf8")).toBe("added\n");
    expect(await readFile(join(root, "link"), "utf8")).toBe("kept\n");
    expect(existsSync(join(root, "after.txt"))).toBe(false);

    await unmountRootfs(root);
    await unmountRootfs(root); // idempotent
    expect(await destroySandboxDisk(child.dir)).toEqual([]);
    expect(await destroySandboxDisk(disk.dir)).toEqual([]);
  });
});

describe("debris and image pool", () => {
  it("finds and cleans mounts and loop devices of unknown sandboxes only", async () => {
    const known = await createSandboxDisk({ dir: sandboxDir("known"), diskSizeMb: 16 });
    const leaked = await createSandboxDisk({ dir: sandboxDir("leaked"), diskSizeMb: 16 });
    await mountRootfs(leaked, [lower]);
    const others = (await readdir(join(stateDir, "sandboxes")))
      .filter((n) => n !== "leaked")
      .map(sandboxDir);
    const debris = await listStorageDebris(stateDir, [...others, join(stateDir, "layers")]);
    expect(debris.mounts).toEqual([leaked.rootfsDir, leaked.mountPoint]);
    expect(debris.loopDevices.map((l) => l.backingFile)).toEqual([leaked.imagePath]);
    expect(await cleanupStorageDebris(debris)).toEqual([]);
    expect(await listStorageDebris(stateDir, others)).toEqual({ mounts: [], loopDevices: [] });
    expect((await mountsUnder(known.dir)).length).toBe(1);
    expect(await destroySandboxDisk(leaked.dir)).toEqual([]);
    expect(await destroySandboxDisk(known.dir)).toEqual([]);
  });

  it("creates disks from a pool of ready disks (figures in the log)", async () => {
    const pool = new DiskPool({ dir: join(stateDir, "disk-pool"), readyPerSize: 2 });
    const time = async (name: string, withPool?: DiskPool) => {
      const started = performance.now();
      const disk = await createSandboxDisk({
        dir: sandboxDir(name),
        diskSizeMb: 256,
        pool: withPool,
      });
      const made = performance.now();
      await mountRootfs(disk, [lower]);
      const times = [made - started, performance.now() - started];
      await writeFile(join(disk.rootfsDir, "works"), "yes");
      expect(await readFile(join(disk.upperDir, "works"), "utf8")).toBe("yes");
      expect(await destroySandboxDisk(disk.dir)).toEqual([]);
      return times;
    };
    const fresh: number[][] = [];
    const pooled: number[][] = [];
    for (let i = 0; i < 7; i++) fresh.push(await time(`fresh${i}`));
    for (let i = 0; i < 7; i++) {
      pool.fill(256);
      await pool.settled();
      pooled.push(await time(`pooled${i}`, pool));
    }
    await pool.settled();
    expect(await pool.ready(256)).toHaveLength(2);
    // A ready disk is mounted where the pool keeps it; the debris finder must be told to keep it.
    const keep = [pool.dir, sandboxDir("one")];
    expect((await listStorageDebris(stateDir, keep)).mounts).toEqual([]);
    const p50 = (xs: number[][], i: number) =>
      xs
        .map((x) => x[i]!)
        .sort((a, b) => a - b)[3]!
        .toFixed(1);
    console.log(
      `256 MB disk, p50 of 7: mkfs+loop mount ${p50(fresh, 0)} ms (+overlay ${p50(fresh, 1)} ms total); ` +
        `from pool ${p50(pooled, 0)} ms (+overlay ${p50(pooled, 1)} ms total)`,
    );
    expect(await pool.clear()).toEqual([]);
    expect(existsSync(pool.dir)).toBe(false);
  });
});
