import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, readdir, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { AgentError } from "../errors.js";
import { CommandError, runCommand } from "../host/index.js";
import { mountsUnder, readMountInfo } from "./mountinfo.js";

/** Layout of one sandbox's storage directory. */
export interface SandboxDisk {
  /** The directory the caller gave, e.g. `<stateDir>/sandboxes/<id>`. */
  dir: string;
  /** Sparse ext4 image of `sizeBytes`. */
  imagePath: string;
  /** Where the image is loop-mounted. */
  mountPoint: string;
  /** Overlay upper and work dirs, inside the image. */
  upperDir: string;
  workDir: string;
  /** The default merged dir for mountRootfs. */
  rootfsDir: string;
  sizeBytes: number;
}

export function sandboxDiskLayout(dir: string, sizeBytes: number): SandboxDisk {
  return {
    dir,
    imagePath: `${dir}/disk.img`,
    mountPoint: `${dir}/disk`,
    upperDir: `${dir}/disk/upper`,
    workDir: `${dir}/disk/work`,
    rootfsDir: `${dir}/rootfs`,
    sizeBytes,
  };
}

/**
 * Makes a sparse ext4 image. No journal (the disk dies with its sandbox), no reserved blocks
 * (the limit is the limit), no discard or inode-table zeroing: a fresh sparse file reads as
 * zeros already, and the mount's noinit_itable keeps the kernel from zeroing it later.
 */
async function formatImage(path: string, sizeMb: number): Promise<void> {
  const file = await open(path, "wx");
  try {
    await file.truncate(sizeMb * 1024 * 1024);
  } finally {
    await file.close();
  }
  await runCommand("mkfs.ext4", [
    "-q",
    "-F",
    "-m",
    "0",
    "-O",
    "^has_journal",
    "-E",
    "nodiscard,lazy_itable_init=1",
    path,
  ]);
}

export interface CreateSandboxDiskOptions {
  dir: string;
  diskSizeMb: number;
  /** Disks made ahead of time; without one (or when it has none ready) the disk is made here. */
  pool?: { take(sizeMb: number, dest: string): Promise<boolean> };
  log?: Logger;
}

/**
 * Mount options: loop, and discard so deleting files inside frees host blocks again.
 * noauto_da_alloc: ext4 otherwise starts writing a file back when it replaces another (rename
 * over it, or truncate), in the writer's call, so that a crash cannot leave it empty; it made a
 * 256 MiB upload over an existing file several times slower than a new one. A sandbox's disk
 * never outlives a host crash (it is debris at the next start), so that guard buys nothing here.
 */
const DISK_MOUNT_OPTIONS = "loop,noatime,nodev,nosuid,discard,noinit_itable,noauto_da_alloc";

/**
 * Creates and mounts a sandbox's disk in `dir` (which must not exist): a sparse image, loop
 * mount (autoclear: unmounting detaches the loop device), upper/ and work/; or takes a ready
 * one from `pool`. On failure removes what it made.
 */
export async function createSandboxDisk(options: CreateSandboxDiskOptions): Promise<SandboxDisk> {
  const { dir, diskSizeMb, pool, log } = options;
  if (!Number.isInteger(diskSizeMb) || diskSizeMb < 8) {
    throw new AgentError(
      "invalid_argument",
      `disk size must be a whole number ≥ 8 MB: ${diskSizeMb}`,
    );
  }
  const disk = sandboxDiskLayout(dir, diskSizeMb * 1024 * 1024);
  // Checked first: a rename from the pool would silently replace an empty directory.
  if (
    await stat(dir).then(
      () => true,
      () => false,
    )
  ) {
    throw new AgentError("already_exists", `${dir} already exists`);
  }
  await mkdir(dirname(dir), { recursive: true });
  if (pool) {
    const started = performance.now();
    if (await pool.take(diskSizeMb, dir)) {
      log?.debug(
        { dir, ms: Math.round((performance.now() - started) * 100) / 100 },
        "disk: from pool",
      );
      return disk;
    }
  }
  try {
    await mkdir(dir, { recursive: false });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw new AgentError("already_exists", `${dir} already exists`);
    throw AgentError.from(err);
  }
  const started = performance.now();
  const marks: Record<string, number> = {};
  const mark = (name: string, since: number) => {
    marks[name] = Math.round((performance.now() - since) * 100) / 100;
  };
  try {
    let t = performance.now();
    await formatImage(disk.imagePath, diskSizeMb);
    mark("mkfs", t);
    t = performance.now();
    await mkdir(disk.mountPoint);
    await runCommand("mount", [
      "-t",
      "ext4",
      "-o",
      DISK_MOUNT_OPTIONS,
      disk.imagePath,
      disk.mountPoint,
    ]);
    mark("mount", t);
    await mkdir(disk.upperDir);
    await mkdir(disk.workDir);
    await mkdir(disk.rootfsDir);
  } catch (err) {
    const rollback = await destroySandboxDisk(dir);
    throw new AgentError("internal", `create disk in ${dir}: ${(err as Error).message}`, {
      cause: rollback.length ? new AggregateError([err, ...rollback]) : err,
    });
  }
  log?.debug(
    { dir, ms: Math.round((performance.now() - started) * 100) / 100, steps: marks },
    "disk: created",
  );
  return disk;
}

/** Adoption: the disk in `dir` if its image exists; mounted again if the mount was lost. */
export async function openSandboxDisk(dir: string): Promise<SandboxDisk | undefined> {
  const image = await stat(`${dir}/disk.img`).catch(() => undefined);
  if (!image) return undefined;
  const disk = sandboxDiskLayout(dir, image.size);
  const mounted = (await readMountInfo()).some((m) => m.mountPoint === disk.mountPoint);
  if (!mounted) {
    await mkdir(disk.mountPoint, { recursive: true });
    await runCommand("mount", [
      "-t",
      "ext4",
      "-o",
      DISK_MOUNT_OPTIONS,
      disk.imagePath,
      disk.mountPoint,
    ]);
    await mkdir(disk.upperDir, { recursive: true });
    await mkdir(disk.workDir, { recursive: true });
  }
  await mkdir(disk.rootfsDir, { recursive: true });
  return disk;
}

/** overlayfs separates lowerdir entries with ':' and options with ','. */
function assertMountablePath(path: string): void {
  if (!path.startsWith("/") || /[:,\\\n]/.test(path)) {
    throw new AgentError("invalid_argument", `path cannot be used in an overlay mount: ${path}`);
  }
}

/**
 * Mounts the sandbox's root: read-only `lowerDirs` (top first) under the disk's upper dir.
 * redirect_dir, metacopy and index stay off so the upper dir is self-contained: it can be frozen
 * into a layer (freezeUpperToLayer) and stacked on the same lowers later. nosuid and nodev
 * because the merged dir is on the host too: a setuid-root file or a device node the sandbox's
 * root made must never work there (inside, no_new_privs and the sandbox's own /dev rule anyway).
 */
export async function mountRootfs(
  disk: SandboxDisk,
  lowerDirs: readonly string[],
  mergedDir: string = disk.rootfsDir,
): Promise<string> {
  if (lowerDirs.length === 0) throw new AgentError("invalid_argument", "no lower layers");
  for (const path of [...lowerDirs, disk.upperDir, disk.workDir, mergedDir])
    assertMountablePath(path);
  await mkdir(mergedDir, { recursive: true });
  const options = [
    `lowerdir=${lowerDirs.join(":")}`,
    `upperdir=${disk.upperDir}`,
    `workdir=${disk.workDir}`,
    "redirect_dir=off",
    "metacopy=off",
    "index=off",
    "nosuid",
    "nodev",
  ].join(",");
  await runCommand("mount", ["-t", "overlay", "overlay", "-o", options, mergedDir]);
  return mergedDir;
}

function notMounted(err: unknown): boolean {
  return (
    err instanceof CommandError &&
    /not mounted|no mount point|No such file or directory/.test(err.stderr)
  );
}

/** Unmounts; when busy, detaches lazily (gone once its last user is). Idempotent. */
export async function unmount(path: string): Promise<void> {
  try {
    await runCommand("umount", [path]);
  } catch (err) {
    if (notMounted(err)) return;
    if (!(err instanceof CommandError && /busy/i.test(err.stderr))) throw err;
    await runCommand("umount", ["-l", path]);
  }
}

export async function unmountRootfs(mergedDir: string): Promise<void> {
  await unmount(mergedDir);
}

export interface LoopDevice {
  device: string;
  backingFile: string;
}

/** Attached loop devices with their backing files (" (deleted)" stripped). */
export async function listLoopDevices(): Promise<LoopDevice[]> {
  const { stdout } = await runCommand("losetup", [
    "--list",
    "--json",
    "--output",
    "NAME,BACK-FILE",
  ]);
  if (!stdout.trim()) return [];
  const parsed = JSON.parse(stdout) as {
    loopdevices: { name: string; "back-file": string | null }[];
  };
  return parsed.loopdevices.map((l) => ({
    device: l.name,
    backingFile: (l["back-file"] ?? "").replace(/ \(deleted\)$/, ""),
  }));
}

export async function detachLoop(device: string): Promise<void> {
  try {
    // On a busy device this only sets autoclear: the kernel detaches it once released.
    await runCommand("losetup", ["-d", device]);
  } catch (err) {
    if (!(err instanceof CommandError && /No such device|No such file/.test(err.stderr))) throw err;
  }
}

/**
 * Removes everything of a sandbox's storage dir: every mount under it (deepest first, lazily if
 * busy), loop devices backed by files in it, then the files. Idempotent; every step is tried
 * and all failures are returned.
 */
export async function destroySandboxDisk(dir: string): Promise<AgentError[]> {
  const errors: AgentError[] = [];
  const attempt = async (what: string, run: () => Promise<void>) => {
    try {
      await run();
    } catch (err) {
      errors.push(new AgentError("internal", `${what}: ${(err as Error).message}`, { cause: err }));
    }
  };
  await attempt(`unmount under ${dir}`, async () => {
    for (const point of await mountsUnder(dir))
      await attempt(`unmount ${point}`, () => unmount(point));
  });
  await attempt(`detach loops of ${dir}`, async () => {
    for (const loop of await listLoopDevices()) {
      if (loop.backingFile.startsWith(`${dir}/`)) {
        await attempt(`detach ${loop.device}`, () => detachLoop(loop.device));
      }
    }
  });
  await attempt(`remove ${dir}`, async () => {
    // rm -r crosses mount points: never let it reach into something that is still mounted.
    const still = await mountsUnder(dir);
    if (still.length > 0) throw new Error(`still mounted, files kept: ${still.join(", ")}`);
    await rm(dir, { recursive: true, force: true });
  });
  return errors;
}

export interface DiskUsage {
  /** Bytes really allocated on the host: st_blocks × 512 (summed for a directory). */
  allocatedBytes: number;
  /** Apparent size (st_size), for comparison. */
  apparentBytes: number;
  /** The image size for an image file (its limit); null for a directory. */
  limitBytes: number | null;
}

/**
 * Usage of a disk image (or of a layer directory, not following symlinks and counting each
 * hard-linked inode once).
 */
export async function diskUsage(path: string): Promise<DiskUsage> {
  const top = await stat(path);
  if (!top.isDirectory()) {
    return { allocatedBytes: top.blocks * 512, apparentBytes: top.size, limitBytes: top.size };
  }
  const seen = new Set<number>();
  let allocatedBytes = 0;
  let apparentBytes = 0;
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = `${dir}/${entry.name}`;
      const st = await lstat(full).catch(() => undefined);
      if (!st || seen.has(st.ino)) continue;
      seen.add(st.ino);
      allocatedBytes += st.blocks * 512;
      apparentBytes += st.size;
      if (entry.isDirectory()) await walk(full);
    }
  };
  await walk(path);
  return { allocatedBytes, apparentBytes, limitBytes: null };
}

/** A temporary name beside `path`, for write-then-rename. */
export function partialName(path: string): string {
  return `${path}.partial-${randomBytes(4).toString("hex")}`;
}
