import type { Stats } from "node:fs";
import { type FileHandle, lstat, readdir, readlink, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { EntryInfo, Filesystem, WatchDirResponseSchema } from "@wrenn/proto/filesystem";
import { EnvdError, rpc } from "../errors.js";
import { keepaliveMs } from "../keepalive.js";
import { type UserInfo, userFromHeaders } from "../user/index.js";
import {
  assertRemovable,
  assertSearchable,
  assertUnlinkable,
  ensureDirs,
  mayList,
  namedAs,
  openChecked,
  openWritableDir,
} from "./access.js";
import { entryInfo, toEntryInfo } from "./entry-info.js";
import { move } from "./move.js";
import { type OwnerNames, ownerNames } from "./owners.js";
import { heldPath, openDirAt, resolvePath } from "./paths.js";
import { removeAs } from "./remove.js";
import type { DirWatcherOptions } from "./watch.js";
import { EventBuffer, Watchers } from "./watchers.js";

/** ListDir answers at most this many entries (a deep listing of / would not fit in memory). */
const maxListEntries = 100_000;

/** lstat; a failure names `shown` (the path asked for) rather than `path`. */
async function lstatOrNotFound(path: string, shown = path): Promise<Stats> {
  try {
    return await lstat(path);
  } catch (err) {
    throw EnvdError.from(err, shown);
  }
}

/**
 * Moves `source` to `destination` as `user` would rename(2) it. Both parent directories are opened
 * once and checked, and the entry is moved between the opened directories: a symlink swapped in
 * for either parent after the check cannot make envd (root) move a file out of, or into, a
 * directory the user may not write (as uploads do).
 */
async function moveBetweenOpened(
  user: UserInfo,
  source: string,
  destination: string,
): Promise<void> {
  const from = await openWritableDir(user, dirname(source));
  try {
    const to = await openWritableDir(user, dirname(destination));
    try {
      const sourceAt = from.at(basename(source));
      const destinationAt = to.at(basename(destination));
      // rename(2) refuses this, but across filesystems (a mount inside the directory) the move is
      // a copy, which would copy its own copy until the disk is full. Real paths: links count.
      const sourceReal = join(await readlink(heldPath(from.handle)), basename(source));
      if (`${await readlink(heldPath(to.handle))}/`.startsWith(`${sourceReal}/`))
        throw new EnvdError(
          "invalid_argument",
          `cannot move ${source} into itself: ${destination}`,
        );
      assertUnlinkable(user, from.st, await lstatOrNotFound(sourceAt, source), source);
      const replaced = await lstat(destinationAt).catch(() => undefined);
      if (replaced) assertUnlinkable(user, to.st, replaced, destination);
      await move(sourceAt, destinationAt, user, from.st.dev === to.st.dev).catch((err: unknown) => {
        throw namedAs(err, [
          [from.at(""), join(dirname(source), "/")],
          [to.at(""), join(dirname(destination), "/")],
        ]);
      });
    } finally {
      await to.handle.close();
    }
  } finally {
    await from.handle.close();
  }
}

/**
 * Opens directory `path` (symlinks followed) to list or watch it, checked on what was opened. A
 * file is the caller's mistake: invalid_argument, as E2B's envd answers.
 */
async function openListable(user: UserInfo, path: string): Promise<FileHandle> {
  const { file, st } = await openChecked(user, path, { read: true }).catch((err: unknown) => {
    throw EnvdError.from(err, path);
  });
  if (!st.isDirectory()) {
    await file.close();
    throw new EnvdError("invalid_argument", `not a directory: ${path}`);
  }
  return file;
}

/**
 * Lists the opened directory `dir` (at `shown`) into `out`, `depth` levels down. Entries are read
 * and directories opened through the opened one, never by name: a directory the sandbox swaps
 * for a symlink midway is not followed into one the user may not list.
 */
async function listTree(
  user: UserInfo,
  dir: FileHandle,
  shown: string,
  depth: number,
  names: OwnerNames,
  out: EntryInfo[],
): Promise<void> {
  const held = heldPath(dir);
  for (const name of (await readdir(held)).sort()) {
    const at = join(held, name);
    const st = await lstat(at).catch(() => undefined);
    if (!st) continue; // removed while listing
    if (out.length >= maxListEntries) {
      throw new EnvdError(
        "resource_exhausted",
        `over ${maxListEntries} entries; list with a smaller depth`,
      );
    }
    const path = join(shown, name);
    out.push(await toEntryInfo(path, st, names, at));
    if (depth <= 1 || !st.isDirectory()) continue;
    const inner = await openDirAt(at);
    if (!inner) continue; // no longer a directory
    try {
      // Like find(1): directories the user cannot read are listed but not descended into.
      if (mayList(user, await inner.stat()))
        await listTree(user, inner, path, depth - 1, names, out);
    } finally {
      await inner.close();
    }
  }
}

/** `use` of directory `path`, opened as openListable does; closed after. */
async function withListableDir<T>(
  user: UserInfo,
  path: string,
  use: (dir: FileHandle) => Promise<T>,
): Promise<T> {
  const dir = await openListable(user, path);
  try {
    return await use(dir);
  } finally {
    await dir.close();
  }
}

/** A watch's options: subdirectories the user may not list are not watched. */
function watchOptions(
  user: UserInfo,
  req: { recursive: boolean; includeEntry: boolean },
): Omit<DirWatcherOptions, "onEvent" | "onOverflow"> {
  return {
    recursive: req.recursive,
    includeEntry: req.includeEntry,
    enters: (st) =>
      mayList(user, { mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid) }),
  };
}

export interface FilesystemService {
  service: ServiceImpl<typeof Filesystem>;
  /** Stops every watcher. */
  close(): Promise<void>;
}

/** filesystem.Filesystem: every call acts as the user of its Authorization header (or the default user). */
export function createFilesystemService(): FilesystemService {
  const watchers = new Watchers();

  async function target(
    ctx: HandlerContext,
    path: string,
  ): Promise<{ user: UserInfo; path: string }> {
    const user = await userFromHeaders(ctx.requestHeader);
    return { user, path: resolvePath(path, user) };
  }

  const service: ServiceImpl<typeof Filesystem> = {
    stat: (req, ctx) =>
      rpc(async () => {
        const { user, path } = await target(ctx, req.path);
        await assertSearchable(user, dirname(path));
        await lstatOrNotFound(path);
        return { entry: await entryInfo(path) };
      }),

    listDir: (req, ctx) =>
      rpc(async () => {
        const { user, path } = await target(ctx, req.path);
        const entries: EntryInfo[] = [];
        await withListableDir(user, path, (dir) =>
          listTree(user, dir, path, req.depth || 1, ownerNames(), entries),
        );
        return { entries };
      }),

    makeDir: (req, ctx) =>
      rpc(async () => {
        const { user, path } = await target(ctx, req.path);
        const existing = await stat(path).catch(() => undefined);
        if (existing?.isDirectory())
          throw new EnvdError("already_exists", `directory already exists: ${path}`);
        // As E2B's envd: a file in the way is a wrong argument, not a state to fix first.
        if (existing)
          throw new EnvdError("invalid_argument", `path exists and is not a directory: ${path}`);
        await ensureDirs(user, path);
        return { entry: await entryInfo(path) };
      }),

    move: (req, ctx) =>
      rpc(async () => {
        const { user, path: source } = await target(ctx, req.source);
        const destination = resolvePath(req.destination, user);
        if (source === "/" || destination === "/")
          throw new EnvdError("invalid_argument", "refusing to move /");
        await assertSearchable(user, dirname(source));
        // Refused before anything is made; checked again on the opened directories below.
        await assertRemovable(user, source, await lstatOrNotFound(source));
        // As E2B: the destination's missing parents are created (owned by the user).
        await ensureDirs(user, dirname(destination));
        await moveBetweenOpened(user, source, destination);
        return { entry: await entryInfo(destination) };
      }),

    remove: (req, ctx) =>
      rpc(async () => {
        const { user, path } = await target(ctx, req.path);
        if (path === "/") throw new EnvdError("invalid_argument", "refusing to remove /");
        await assertSearchable(user, dirname(path));
        await removeAs(user, path);
        return {};
      }),

    async *watchDir(req, ctx): AsyncGenerator<MessageInitShape<typeof WatchDirResponseSchema>> {
      const buffer = new EventBuffer();
      const watcher = await rpc(async () => {
        const { user, path } = await target(ctx, req.path);
        return withListableDir(user, path, (dir) =>
          watchers.start(path, dir, watchOptions(user, req), buffer),
        );
      });
      try {
        yield { event: { case: "start", value: {} } };
        const idleMs = keepaliveMs(ctx);
        while (!ctx.signal.aborted) {
          await buffer.wait(idleMs, ctx.signal);
          if (buffer.overflowed)
            throw new EnvdError("resource_exhausted", buffer.overflowed).toConnectError();
          const events = buffer.take();
          if (events.length === 0 && !ctx.signal.aborted)
            yield { event: { case: "keepalive", value: {} } };
          for (const event of events) yield { event: { case: "filesystem", value: event } };
        }
      } finally {
        watchers.stop(watcher);
      }
    },

    createWatcher: (req, ctx) =>
      rpc(async () => {
        const { user, path } = await target(ctx, req.path);
        const watcherId = await withListableDir(user, path, (dir) =>
          watchers.createPolling(path, dir, watchOptions(user, req)),
        );
        return { watcherId };
      }),

    getWatcherEvents: (req) => rpc(async () => ({ events: watchers.drain(req.watcherId) })),

    removeWatcher: (req) =>
      rpc(async () => {
        watchers.remove(req.watcherId);
        return {};
      }),
  };

  return {
    service,
    async close() {
      watchers.close();
    },
  };
}
