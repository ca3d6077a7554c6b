import { constants, type Stats, statSync } from "node:fs";
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  stat,
} from "node:fs/promises";
import { basename, dirname, join, parse, sep } from "node:path";
import { EnvdError } from "../errors.js";
import type { UserInfo } from "../user/index.js";
import { heldPath, openDirAt } from "./paths.js";

/*
 * envd runs as root and acts for users. File operations run as root (one process serves every
 * user; switching the process's ids per request is not safe with Node's thread pool), so the
 * kernel's permission check is done here first, as the user would get it: classic owner / group /
 * other bits, the sticky bit, search (x) on every directory on the way. Not modelled: ACLs,
 * capabilities other than root's, read-only mounts (the kernel still refuses those). Created
 * files and directories are chowned to the user, so they end up owned as if the user made them.
 */

const R = 4;
const W = 2;
const X = 1;

function isRoot(user: UserInfo): boolean {
  return user.uid === 0;
}

/** What a permission check reads of a file's stat. */
type Owned = Pick<Stats, "mode" | "uid" | "gid">;

function permits(user: UserInfo, st: Owned, bits: number): boolean {
  if (isRoot(user)) return true;
  let granted: number;
  if (st.uid === user.uid) granted = (st.mode >> 6) & 7;
  else if (user.groups.includes(st.gid)) granted = (st.mode >> 3) & 7;
  else granted = st.mode & 7;
  return (granted & bits) === bits;
}

function denied(user: UserInfo, what: string, path: string): EnvdError {
  return new EnvdError("permission_denied", `user "${user.name}" may not ${what} ${path}`);
}

/**
 * The first directory from / down to `realDir` (already free of symlinks) that does not let the
 * user search it, or undefined. Synchronous: a few stats of local paths take microseconds, less
 * than a trip through the thread pool.
 */
export function searchBlocker(user: UserInfo, realDir: string): string | undefined {
  if (isRoot(user)) return undefined;
  const { root } = parse(realDir);
  let current = root;
  const parts = realDir.slice(root.length).split(sep).filter(Boolean);
  for (let i = 0; ; i++) {
    if (!permits(user, statSync(current), X)) return current;
    const part = parts[i];
    if (part === undefined) return undefined;
    current = join(current, part);
  }
}

async function assertSearchableReal(user: UserInfo, realDir: string): Promise<void> {
  const blocker = searchBlocker(user, realDir);
  if (blocker !== undefined) throw denied(user, "enter", blocker);
}

/** The user may look up names inside `dir` (it and all its ancestors grant search). */
export async function assertSearchable(user: UserInfo, dir: string): Promise<void> {
  if (isRoot(user)) return;
  await assertSearchableReal(user, await realpath(dir));
}

/** The user may open `path` (following symlinks) for `read` and/or `write`. */
export async function assertAccess(
  user: UserInfo,
  path: string,
  mode: { read?: boolean; write?: boolean },
): Promise<Stats> {
  const real = await realpath(path);
  const st = await stat(real);
  if (isRoot(user)) return st;
  await assertSearchableReal(user, dirname(real));
  const bits = (mode.read ? R : 0) | (mode.write ? W : 0) | (st.isDirectory() ? X : 0);
  if (!permits(user, st, bits)) throw denied(user, mode.write ? "write" : "read", path);
  return st;
}

/**
 * Opens `path` once (following symlinks, as open(2) would) and checks the file that was opened,
 * not the name: a process in the sandbox swapping a symlink between a check and the open cannot
 * make envd open something else. The opened file's path comes from /proc/self/fd, its mode from
 * fstat of the same descriptor. Non-blocking, so a FIFO planted at the path cannot hang envd.
 */
export async function openChecked(
  user: UserInfo,
  path: string,
  mode: { read?: boolean; write?: boolean },
): Promise<{ file: FileHandle; st: Stats }> {
  const flags = (mode.write ? constants.O_RDWR : constants.O_RDONLY) | constants.O_NONBLOCK;
  const file = await open(path, flags);
  try {
    const st = await file.stat();
    if (!isRoot(user)) {
      const real = await readlink(`/proc/self/fd/${file.fd}`);
      await assertSearchableReal(user, dirname(real));
      const bits = (mode.read ? R : 0) | (mode.write ? W : 0) | (st.isDirectory() ? X : 0);
      if (!permits(user, st, bits)) throw denied(user, mode.write ? "write" : "read", path);
    }
    return { file, st };
  } catch (err) {
    await file.close();
    throw err;
  }
}

/**
 * Opens directory `dir` once and checks that the user may add or remove names in the directory
 * that was opened. Work inside it then goes through `/proc/self/fd/<fd>/<name>`, which resolves
 * to the opened directory whatever is renamed or swapped at `dir` meanwhile (openat(2) by path).
 */
export async function openWritableDir(
  user: UserInfo,
  dir: string,
): Promise<{ handle: FileHandle; st: Stats; at: (name: string) => string }> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    const st = await handle.stat();
    if (!isRoot(user)) {
      const real = await readlink(`/proc/self/fd/${handle.fd}`);
      await assertSearchableReal(user, real);
      if (!permits(user, st, W | X)) throw denied(user, "write into", dir);
    }
    return { handle, st, at: (name) => `/proc/self/fd/${handle.fd}/${name}` };
  } catch (err) {
    await handle.close();
    if ((err as NodeJS.ErrnoException).code === "ENOTDIR")
      throw new EnvdError("failed_precondition", `not a directory: ${dir}`);
    throw err;
  }
}

/** The user may add or remove names in directory `dir`. */
export async function assertWritableDir(user: UserInfo, dir: string): Promise<Stats> {
  const real = await realpath(dir);
  const st = await stat(real);
  if (!st.isDirectory()) throw new EnvdError("failed_precondition", `not a directory: ${dir}`);
  if (isRoot(user)) return st;
  await assertSearchableReal(user, real);
  if (!permits(user, st, W | X)) throw denied(user, "write into", dir);
  return st;
}

/** The user may unlink or rename `path` itself (not what a symlink points to). */
export async function assertRemovable(user: UserInfo, path: string, entry: Stats): Promise<void> {
  assertUnlinkable(user, await assertWritableDir(user, dirname(path)), entry, path);
}

/**
 * The user may unlink `entry` (at `path`) from `parent`, a directory they may write into: in a
 * sticky one (/tmp) only the owner of the entry or of the directory may.
 */
export function assertUnlinkable(user: UserInfo, parent: Stats, entry: Stats, path: string): void {
  if (isRoot(user)) return;
  if (parent.mode & 0o1000 && entry.uid !== user.uid && parent.uid !== user.uid)
    throw denied(user, "remove", path);
}

/** The user may list directory `st` and look up the names in it. */
export function mayList(user: UserInfo, st: Owned): boolean {
  return isRoot(user) || permits(user, st, R | X);
}

/** The user may list directory `st` (at `path`) and remove what is in it. */
export function assertEmptiable(user: UserInfo, st: Stats, path: string): void {
  if (!isRoot(user) && !permits(user, st, R | W | X)) throw denied(user, "empty", path);
}

/** Before a recursive removal: every directory in the tree must let the user list and empty it. */
export async function assertRemovableTree(user: UserInfo, dir: string): Promise<void> {
  if (isRoot(user)) return;
  const st = await lstat(dir);
  if (!st.isDirectory()) return;
  assertEmptiable(user, st, dir);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) await assertRemovableTree(user, join(dir, entry.name));
  }
}

/**
 * `err` as an EnvdError naming the paths asked for where it names an opened directory's
 * /proc/self/fd path: each `[at, shown]` pair replaces `at` with `shown`.
 */
export function namedAs(err: unknown, names: [at: string, shown: string][]): EnvdError {
  const failed = EnvdError.from(err);
  let message = failed.message;
  for (const [at, shown] of names) message = message.replaceAll(at, shown);
  return new EnvdError(failed.code, message, { cause: err });
}

/** The directory at `at` (a path under an opened parent), opened to go on inside it. */
async function holdDir(at: string, shown: string, follow: boolean): Promise<FileHandle> {
  const held = await openDirAt(at, follow);
  if (!held) throw new EnvdError("failed_precondition", `not a directory: ${shown}`);
  return held;
}

/*
 * envd makes a directory as root and chowns it after, so another of envd's requests looking in
 * between would find it root's and refuse. ensureDirs calls take turns: each finds what an
 * earlier one made already the user's. (What a process in the sandbox makes is its own already.)
 */
let turns: Promise<void> = Promise.resolve();

/**
 * Creates `dir` and any missing parents as the user would (mkdir -p), each new directory owned by
 * the user. Existing non-directories on the way are an error. Each level is made inside the
 * directory opened before it and chowned through its own descriptor: a symlink swapped in for a
 * level just made cannot make envd (root) make the next one, or give the user, somewhere else.
 */
export async function ensureDirs(user: UserInfo, dir: string): Promise<void> {
  // Most uploads go into a directory that is there already: no need to wait for a turn. One the
  // user may not write into may be another request's, not chowned yet: that waits and looks again.
  const st = await stat(dir).catch(() => undefined);
  if (st?.isDirectory() && permits(user, st, W | X)) return;
  const turn = turns.then(() => makeMissingDirs(user, dir));
  turns = turn.catch(() => {});
  return turn;
}

async function makeMissingDirs(user: UserInfo, dir: string): Promise<void> {
  const missing: string[] = [];
  let current = dir;
  for (;;) {
    try {
      const st = await stat(current);
      if (!st.isDirectory())
        throw new EnvdError("failed_precondition", `not a directory: ${current}`);
      break;
    } catch (err) {
      // ENOTDIR: a file further up; the walk reaches it and reports it.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw err;
      missing.unshift(current);
      current = dirname(current);
    }
  }
  if (missing.length === 0) return;
  let parent = (await openWritableDir(user, current)).handle;
  try {
    for (const path of missing) {
      const at = join(heldPath(parent), basename(path));
      const made = await mkdir(at, { mode: 0o755 }).then(
        () => true,
        (err: NodeJS.ErrnoException) => {
          if (err.code !== "EEXIST") throw namedAs(err, [[at, path]]);
          return false;
        },
      );
      const next = await holdDir(at, path, !made);
      await parent.close();
      parent = next;
      if (made) await next.chown(user.uid, user.gid);
      // Someone else made it meanwhile: fine, as long as it is a directory the user may go on in.
      else if (path !== dir && !permits(user, await next.stat(), W | X))
        throw denied(user, "write into", path);
    }
  } finally {
    await parent.close();
  }
}
