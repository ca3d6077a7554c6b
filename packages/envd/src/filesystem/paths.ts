import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import { EnvdError } from "../errors.js";
import type { UserInfo } from "../user/index.js";

/**
 * The absolute, normalised path a request names: absolute as given, `~` and `~/x` in the user's
 * home, anything else relative to the home (as E2B's envd does).
 */
export function resolvePath(input: string | null | undefined, user: UserInfo): string {
  if (!input) throw new EnvdError("invalid_argument", "path is required");
  if (input.includes("\0")) throw new EnvdError("invalid_argument", "path contains a NUL byte");
  let path = input;
  if (path === "~" || path.startsWith("~/")) path = join(user.home, path.slice(1));
  else if (path.startsWith("~"))
    throw new EnvdError("invalid_argument", `cannot expand another user's home in "${input}"`);
  return isAbsolute(path) ? resolve(path) : resolve(user.home, path);
}

/**
 * An open file's own path, /proc/self/fd/N: names joined to an open directory's resolve from that
 * directory whatever is swapped at its name (openat(2) by path); readlink gives where it really is.
 */
export function heldPath(file: FileHandle): string {
  return `/proc/self/fd/${file.fd}`;
}

/**
 * The directory at `at`, opened without following a symlink (unless `follow`); undefined if it is
 * not one (now).
 */
export async function openDirAt(at: string, follow = false): Promise<FileHandle | undefined> {
  const flags = constants.O_RDONLY | constants.O_DIRECTORY | (follow ? 0 : constants.O_NOFOLLOW);
  try {
    return await open(at, flags);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOTDIR" || code === "ELOOP") return undefined;
    throw err;
  }
}
