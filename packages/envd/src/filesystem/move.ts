import { constants } from "node:fs";
import {
  chmod,
  copyFile,
  lchown,
  lstat,
  mkdir,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
  utimes,
} from "node:fs/promises";
import { join } from "node:path";
import { EnvdError } from "../errors.js";

/** Copies a tree keeping modes, owners and times (a rename's result, on another filesystem). */
async function copyTree(source: string, destination: string): Promise<void> {
  const st = await lstat(source);
  if (st.isDirectory()) {
    await mkdir(destination, { mode: 0o700 });
    for (const name of await readdir(source))
      await copyTree(join(source, name), join(destination, name));
  } else if (st.isSymbolicLink()) {
    await symlink(await readlink(source), destination);
  } else if (st.isFile()) {
    await copyFile(source, destination, constants.COPYFILE_EXCL);
  } else {
    throw new EnvdError(
      "failed_precondition",
      `cannot move special file ${source} across filesystems`,
    );
  }
  await lchown(destination, st.uid, st.gid);
  if (st.isSymbolicLink()) return;
  await chmod(destination, st.mode & 0o7777);
  await utimes(destination, st.atime, st.mtime);
}

/** rename(2), falling back to copy + remove when source and destination are on different filesystems. */
export async function move(source: string, destination: string): Promise<void> {
  try {
    await rename(source, destination);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
  }
  // rename replaces an existing destination (a file, or an empty directory); so does this.
  const existing = await lstat(destination).catch(() => undefined);
  if (existing) {
    const source_ = await lstat(source);
    if (existing.isDirectory() !== source_.isDirectory()) {
      throw new EnvdError(
        "failed_precondition",
        `cannot replace ${destination} with ${source}: one is a directory`,
      );
    }
    if (existing.isDirectory() && (await readdir(destination)).length > 0) {
      throw new EnvdError(
        "failed_precondition",
        `destination directory ${destination} is not empty`,
      );
    }
    await rm(destination, { recursive: true });
  }
  try {
    await copyTree(source, destination);
  } catch (err) {
    await rm(destination, { recursive: true, force: true });
    throw err;
  }
  await rm(source, { recursive: true });
}
