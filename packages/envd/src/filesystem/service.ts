import type { Stats } from "node:fs";
import { lstat, readdir, readlink, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { EntryInfo, Filesystem, WatchDirResponseSchema } from "@wrenn/proto/filesystem";
import { EnvdError, rpc } from "../errors.js";
import { keepaliveMs } from "../keepalive.js";
import { type UserInfo, userFromHeaders } from "../user/index.js";
import {
  assertAccess,
  assertRemovable,
  assertRemovableTree,
  assertSearchable,
  assertUnlinkable,
  ensureDirs,
  namedAs,
  openWritableDir,
} from "./access.js";
import { entryInfo, toEntryInfo } from "./entry-info.js";
import { move } from "./move.js";
import { type OwnerNames, ownerNames } from "./owners.js";
import { heldPath, resolvePath } from "./paths.js";
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
      await move(sourceAt, destinationAt).catch((err: unknown) => {
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
 * A directory the user may list (or watch): it must exist, be a directory (symlinks followed) and
 * grant r+x. A file is the caller's mistake: invalid_argument, as E2B's envd answers.
 */
async function readableDir(user: UserInfo, path: string): Promise<void> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (err) {
    throw EnvdError.from(err, path);
  }
  if (!st.isDirectory()) throw new EnvdError("invalid_argument", `not a directory: ${path}`);
  await assertAccess(user, path, { read: true });
}

async function listTree(
  user: UserInfo,
  dir: string,
  depth: number,
  names: OwnerNames,
  out: EntryInfo[],
): Promise<void> {
  const children = (await readdir(dir)).sort();
  for (const name of children) {
    const path = join(dir, name);
    const st = await lstat(path).catch(() => undefined);
    if (!st) continue; // removed while listing
    if (out.length >= maxListEntries) {
      throw new EnvdError(
        "resource_exhausted",
        `over ${maxListEntries} entries; list with a smaller depth`,
      );
    }
    out.push(await toEntryInfo(path, st, names));
    if (depth > 1 && st.isDirectory()) {
      // Like find(1): directories the user cannot read are listed but not descended into.
      const readable = await assertAccess(user, path, { read: true }).then(
        () => true,
        () => false,
      );
      if (readable) await listTree(user, path, depth - 1, names, out);
    }
  }
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
        await readableDir(user, path);
        const entries: EntryInfo[] = [];
        await listTree(user, path, req.depth || 1, ownerNames(), entries);
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
        const st = await lstatOrNotFound(path);
        await assertRemovable(user, path, st);
        if (st.isDirectory()) await assertRemovableTree(user, path);
        await rm(path, { recursive: true });
        return {};
      }),

    async *watchDir(req, ctx): AsyncGenerator<MessageInitShape<typeof WatchDirResponseSchema>> {
      const buffer = new EventBuffer();
      const watcher = await rpc(async () => {
        const { user, path } = await target(ctx, req.path);
        await readableDir(user, path);
        return watchers.start(
          path,
          { recursive: req.recursive, includeEntry: req.includeEntry },
          buffer,
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
        await readableDir(user, path);
        return {
          watcherId: await watchers.createPolling(path, {
            recursive: req.recursive,
            includeEntry: req.includeEntry,
          }),
        };
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
