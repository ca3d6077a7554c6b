import type { Stats } from "node:fs";
import { lstat, readdir, rmdir, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { UserInfo } from "../user/index.js";
import {
  assertEmptiable,
  assertRemovableTree,
  assertUnlinkable,
  namedAs,
  openWritableDir,
} from "./access.js";
import { heldPath, openDirAt } from "./paths.js";

/**
 * Removes what is at `path` (a directory with all it holds) as `user` may. Its parent is opened
 * once and checked, and the rest is reached through opened directories, never by a name again
 * (see removeAt): a directory the sandbox swaps for a symlink midway cannot lead envd (root) into
 * files the user may not remove. A tree is checked whole first (assertRemovableTree), so a
 * refusal comes before anything is removed unless the tree changes meanwhile.
 */
export async function removeAs(user: UserInfo, path: string): Promise<void> {
  const dir = await openWritableDir(user, dirname(path));
  try {
    const at = dir.at(basename(path));
    const entry = await lstat(at);
    assertUnlinkable(user, dir.st, entry, path);
    if (entry.isDirectory()) await assertRemovableTree(user, at);
    await removeAt(at, entry, path, user);
  } catch (err) {
    throw namedAs(err, [[dir.at(""), join(dirname(path), "/")]]);
  } finally {
    await dir.handle.close();
  }
}

/**
 * Removes `entry`, found at `at` (a name inside an opened directory; `shown` in errors). A
 * directory is opened without following a symlink and checked on its descriptor before it is
 * emptied as `user` may (without one: as envd); a name that is no longer a directory is unlinked,
 * never followed.
 */
export async function removeAt(
  at: string,
  entry: Stats,
  shown: string,
  user?: UserInfo,
): Promise<void> {
  const dir = entry.isDirectory() ? await openDirAt(at) : undefined;
  if (!dir) return unlink(at);
  const held = heldPath(dir);
  try {
    const st = await dir.stat();
    if (user) assertEmptiable(user, st, shown);
    for (const name of await readdir(held)) {
      const child = join(held, name);
      const inner = await lstat(child).catch(() => undefined);
      if (!inner) continue; // gone meanwhile
      if (user) assertUnlinkable(user, st, inner, join(shown, name));
      await removeAt(child, inner, join(shown, name), user);
    }
  } catch (err) {
    throw namedAs(err, [[held, shown]]);
  } finally {
    await dir.close();
  }
  await rmdir(at);
}
