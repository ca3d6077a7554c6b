import { constants, type Stats } from "node:fs";
import {
  type FileHandle,
  lchown,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rmdir,
  symlink,
  unlink,
} from "node:fs/promises";
import { join } from "node:path";
import { EnvdError } from "../errors.js";
import type { UserInfo } from "../user/index.js";
import { assertRemovableTree } from "./access.js";
import { heldPath } from "./paths.js";
import { removeAt } from "./remove.js";

function special(shown: string): EnvdError {
  return new EnvdError(
    "failed_precondition",
    `cannot move special file ${shown} across filesystems`,
  );
}

const COPY_CHUNK_BYTES = 1024 * 1024;

/** Copies a file's bytes handle to handle (streams on a FileHandle would keep it from closing). */
async function copyData(from: FileHandle, to: FileHandle): Promise<void> {
  const buf = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
  for (;;) {
    const { bytesRead } = await from.read(buf, 0, buf.length);
    if (bytesRead === 0) return;
    for (let done = 0; done < bytesRead; )
      done += (await to.write(buf, done, bytesRead - done)).bytesWritten;
  }
}

/** Owner, mode and times of `st`, set through the handle: never on whatever a name now points to. */
async function keepMetadata(to: FileHandle, st: Stats): Promise<void> {
  await to.chown(st.uid, st.gid);
  await to.chmod(st.mode & 0o7777);
  await to.utimes(st.atime, st.mtime);
}

/**
 * Copies a tree keeping modes, owners and times (a rename's result, on another filesystem). The
 * sandbox may swap any name meanwhile: each entry is opened without following a symlink and
 * non-blocking (a FIFO swapped in after the lstat must not hold a thread forever), checked by
 * fstat, and read, written and given its metadata through the descriptors; a directory's entries
 * are reached through the directory opened, never by its name again. `shown` names it in errors.
 */
async function copyTree(source: string, destination: string, shown: string): Promise<void> {
  const st = await lstat(source);
  if (st.isSymbolicLink()) {
    await symlink(await readlink(source), destination);
    await lchown(destination, st.uid, st.gid);
    return;
  }
  if (!st.isDirectory() && !st.isFile()) throw special(shown);
  const from = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const opened = await from.stat();
    if (opened.isDirectory()) {
      await mkdir(destination, { mode: 0o700 });
      const to = await open(
        destination,
        constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
      );
      try {
        for (const name of await readdir(heldPath(from)))
          await copyTree(join(heldPath(from), name), join(heldPath(to), name), join(shown, name));
        await keepMetadata(to, opened);
      } finally {
        await to.close();
      }
    } else if (opened.isFile()) {
      const to = await open(
        destination,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      try {
        await copyData(from, to);
        await keepMetadata(to, opened);
      } finally {
        await to.close();
      }
    } else {
      throw special(shown);
    }
  } finally {
    await from.close();
  }
}

/**
 * rename(2), falling back to copy + remove when it answers EXDEV. Across filesystems the source
 * then goes as `user` may remove it, as with mv(1) run by the user: a tree they may not empty is
 * refused before anything is copied. Within one filesystem (`sameFilesystem`: the parents' st_dev;
 * overlayfs answers EXDEV for a directory of a lower layer) it is still a rename, which needs only
 * what the caller checked.
 */
export async function move(
  source: string,
  destination: string,
  user: UserInfo,
  sameFilesystem: boolean,
): Promise<void> {
  try {
    await rename(source, destination);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
  }
  const remover = sameFilesystem ? undefined : user;
  if (remover) await assertRemovableTree(remover, source);
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
    // Not recursive: whatever the sandbox puts in it meanwhile makes this fail, not go.
    await (existing.isDirectory() ? rmdir(destination) : unlink(destination));
  }
  try {
    await copyTree(source, destination, source);
  } catch (err) {
    const copied = await lstat(destination).catch(() => undefined);
    if (copied) await removeAt(destination, copied, destination);
    throw err;
  }
  await removeAt(source, await lstat(source), source, remover);
}
