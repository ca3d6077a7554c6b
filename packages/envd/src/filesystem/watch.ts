import { type BigIntStats, type FSWatcher, watch } from "node:fs";
import { type FileHandle, lstat, readdir, readlink } from "node:fs/promises";
import { basename, dirname, join, relative, sep } from "node:path";
import { create } from "@bufbuild/protobuf";
import { EventType, type FilesystemEvent, FilesystemEventSchema } from "@wrenn/proto/filesystem";
import { logger } from "../logger.js";
import { entryInfo } from "./entry-info.js";
import { heldPath, openDirAt } from "./paths.js";
import { identity, isUpload, isUploadTemp } from "./uploads.js";

/** Directories one watcher may hold (each costs an inotify watch; the kernel's default cap is 8192). */
export const maxWatchedDirs = 4096;
/**
 * Raw fs.watch events one watcher holds before classifying them, some 200 bytes each (a burst of
 * 30k new files makes 60k, classified in about 10 s). A directory changing faster than envd can
 * classify (a loop making and removing files) grew the backlog without end; past this the
 * watcher overflows.
 */
export const maxRawBacklog = 100_000;
/** Entries whose identity a watcher remembers, to tell a rename from a remove + create. */
const maxTrackedEntries = 100_000;
/**
 * How long a vanished entry waits for its inode to reappear elsewhere (a rename) before it counts
 * as removed: this long with no raw event left to classify, and never more than the cap.
 */
const renameWindowMs = 50;
const renameWindowCapMs = 2000;

/** What a reader sees change: content (mtime, size) and attributes (mode, owner). */
interface Seen {
  content: string;
  attrs: string;
}

function seen(st: BigIntStats): Seen {
  return { content: `${st.mtimeNs}:${st.size}`, attrs: `${st.mode}:${st.uid}:${st.gid}` };
}

export interface DirWatcherOptions {
  recursive: boolean;
  /** Whether a subdirectory found is watched too (recursive): the watching user may list it. */
  enters(st: BigIntStats): boolean;
  includeEntry: boolean;
  onEvent(event: FilesystemEvent): void;
  /** Changes came faster than they could be classified and some were dropped (called once). */
  onOverflow(): void;
}

interface RawEvent {
  dir: string;
  kind: string;
  filename: string | null;
}

interface Slot {
  event: FilesystemEvent | undefined;
  /** A vanished entry still waiting to learn whether it was renamed or removed. */
  vanished?: { id: string; timer: NodeJS.Timeout };
}

/**
 * Watches a directory (and, recursively, its subdirectories) with one fs.watch per directory:
 * Node 18 has no recursive fs.watch on Linux, and inotify is per directory anyway. Each directory
 * is watched, listed and checked through a descriptor (inotify watches the inode it was given),
 * so a directory the sandbox swaps for a symlink is never watched in place of the one checked.
 *
 * fs.watch only says "rename" (something appeared or vanished) or "change" (content or
 * attributes); each is classified by lstat: a new entry is CREATE; a vanished entry whose identity
 * shows up again within a few milliseconds is RENAME (the new name then gets CREATE, as inotify
 * reports it), otherwise REMOVE; a change is WRITE when content (mtime, size) moved and CHMOD when
 * mode or owner did, compared with what was last seen of that entry (timestamps alone are too
 * coarse to tell a chmod right after a write). An upload's temporary file is never reported; its
 * rename over the target is CREATE (when new) and WRITE of the target. Events keep the order in
 * which they happened.
 */
export class DirWatcher {
  private readonly dirs = new Map<string, FSWatcher>();
  /** Watched directory → its real path when its watch began (what its subdirectories' start with). */
  private readonly reals = new Map<string, string>();
  /** path → identity of the entry there (see `identity`). */
  private readonly inodes = new Map<string, string>();
  private readonly slots: Slot[] = [];
  /** Raw fs.watch events not classified yet, from `rawHead` on, classified one at a time. */
  private raw: RawEvent[] = [];
  private rawHead = 0;
  /** Raw events not classified yet, the one being classified included. */
  private backlog = 0;
  private overflowed = false;
  private closed = false;
  private warnedDirs = false;
  private untracked = false;
  /** path → what was last seen of it, to tell WRITE from CHMOD and drop repeated reports. */
  private readonly seen = new Map<string, Seen>();

  private constructor(
    readonly root: string,
    private readonly options: DirWatcherOptions,
  ) {}

  /**
   * Starts watching `root`, opened (and checked) by the caller as `opened`; resolves once the
   * watches are in place.
   */
  static async start(
    root: string,
    opened: FileHandle,
    options: DirWatcherOptions,
  ): Promise<DirWatcher> {
    const watcher = new DirWatcher(root, options);
    await watcher.watchOpened(root, opened, await readlink(heldPath(opened)), false);
    if (!watcher.dirs.has(root)) throw new Error(`could not watch ${root}`);
    return watcher;
  }

  close(): void {
    this.closed = true;
    for (const w of this.dirs.values()) w.close();
    this.dirs.clear();
    this.reals.clear();
    for (const slot of this.slots) if (slot.vanished) clearTimeout(slot.vanished.timer);
    this.slots.length = 0;
    this.inodes.clear();
    this.raw = [];
    this.rawHead = 0;
  }

  private enqueue(dir: string, kind: string, filename: string | Buffer | null): void {
    if (this.closed) return;
    if (this.backlog >= maxRawBacklog) {
      if (!this.overflowed) {
        this.overflowed = true;
        logger.warn({ root: this.root, max: maxRawBacklog }, "watch: changes come too fast");
        this.options.onOverflow();
      }
      return;
    }
    this.raw.push({ dir, kind, filename: filename === null ? null : String(filename) });
    if (++this.backlog === 1) void this.classifyBacklog();
  }

  private async classifyBacklog(): Promise<void> {
    while (!this.closed && this.rawHead < this.raw.length) {
      const { dir, kind, filename } = this.raw[this.rawHead++] as RawEvent;
      try {
        await this.process(dir, kind, filename);
      } catch (err) {
        logger.warn({ err, dir }, "watch event failed");
      }
      this.backlog--;
      // Drop what was classified now and then: shifting one at a time is quadratic.
      if (this.rawHead >= 1024 && this.rawHead * 2 >= this.raw.length) {
        this.raw = this.raw.slice(this.rawHead);
        this.rawHead = 0;
      }
    }
  }

  /**
   * Watches subdirectory `dir`, opened without following a symlink. Its real path must be its
   * parent's (as watched) joined with its name: a parent swapped for a symlink meanwhile would
   * lead elsewhere. The user must (still) be allowed to list what was opened.
   */
  private async addDir(dir: string, announceContents: boolean): Promise<void> {
    const parentReal = this.reals.get(dirname(dir));
    if (this.closed || this.dirs.has(dir) || parentReal === undefined) return;
    const handle = await openDirAt(dir).catch(() => undefined);
    if (!handle) return;
    try {
      const real = await readlink(heldPath(handle));
      if (real !== join(parentReal, basename(dir))) return;
      if (!this.options.enters(await handle.stat({ bigint: true }))) return;
      await this.watchOpened(dir, handle, real, announceContents);
    } finally {
      await handle.close();
    }
  }

  /**
   * Watches the opened directory `dir` (whose real path is `real`), and (recursively) what is in
   * it, through its descriptor.
   */
  private async watchOpened(
    dir: string,
    handle: FileHandle,
    real: string,
    announceContents: boolean,
  ): Promise<void> {
    if (this.closed || this.dirs.has(dir)) return;
    if (this.dirs.size >= maxWatchedDirs) {
      if (!this.warnedDirs)
        logger.warn(
          { root: this.root, max: maxWatchedDirs },
          "watch: too many directories, not watching more",
        );
      this.warnedDirs = true;
      return;
    }
    const held = heldPath(handle);
    let fsWatcher: FSWatcher;
    try {
      fsWatcher = watch(held, { persistent: false }, (kind, filename) =>
        this.enqueue(dir, kind, filename),
      );
    } catch (err) {
      logger.warn({ err, dir }, "watch: cannot watch directory");
      return;
    }
    fsWatcher.on("error", () => this.dropDir(dir));
    this.dirs.set(dir, fsWatcher);
    this.reals.set(dir, real);
    let names: string[];
    try {
      names = await readdir(held);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      if (this.closed) return;
      if (isUploadTemp(name)) continue;
      if (this.inodes.has(path)) continue;
      const st = await lstat(join(held, name), { bigint: true }).catch(() => undefined);
      if (!st) continue;
      this.track(path, st);
      // A directory that just appeared may already hold entries made before its watch existed.
      if (announceContents) await this.push(path, EventType.CREATE);
      if (this.descends(st)) await this.addDir(path, announceContents);
    }
  }

  /** Whether to watch in directory `st` too: recursive, and the user may list it (as find(1)). */
  private descends(st: BigIntStats): boolean {
    return this.options.recursive && st.isDirectory() && this.options.enters(st);
  }

  /** Stops watching `dir` and everything below it (it was removed or moved away). */
  private dropDir(dir: string): void {
    const prefix = dir + sep;
    for (const [path, w] of this.dirs) {
      if (path === dir || path.startsWith(prefix)) {
        w.close();
        this.dirs.delete(path);
        this.reals.delete(path);
      }
    }
    for (const path of this.inodes.keys()) {
      if (path.startsWith(prefix)) {
        this.inodes.delete(path);
        this.seen.delete(path);
      }
    }
  }

  private track(path: string, st: BigIntStats): void {
    if (this.inodes.size >= maxTrackedEntries && !this.inodes.has(path)) {
      this.untracked = true;
      return;
    }
    this.inodes.set(path, identity(st));
    this.seen.set(path, seen(st));
  }

  private async process(dir: string, kind: string, filename: string | null): Promise<void> {
    if (this.closed || !this.dirs.has(dir)) return;
    if (filename === null) return; // inotify always names the entry; nothing to classify without it
    if (isUploadTemp(basename(filename))) return;
    const path = join(dir, filename);
    const st: BigIntStats | undefined = await lstat(path, { bigint: true }).catch(() => undefined);
    const known = this.inodes.get(path);
    if (!st) {
      if (known === undefined) {
        // Never seen: created and gone before we looked, or beyond the tracking cap.
        if (this.untracked && kind === "rename") await this.push(path, EventType.REMOVE);
        return;
      }
      this.inodes.delete(path);
      this.seen.delete(path);
      this.dropDir(path);
      this.pushVanished(path, known);
      return;
    }
    const id = identity(st);
    if (known !== id) {
      const renamed = this.slots.find((slot) => slot.vanished?.id === id);
      if (renamed?.vanished) {
        clearTimeout(renamed.vanished.timer);
        renamed.vanished = undefined;
        if (renamed.event) renamed.event.type = EventType.RENAME;
      }
      if (known !== undefined) this.dropDir(path);
      this.track(path, st);
      if (isUpload(id)) {
        // An upload's rename: what E2B's in-place write reports (see uploads.ts).
        if (known === undefined) await this.push(path, EventType.CREATE);
        await this.push(path, EventType.WRITE);
        return;
      }
      await this.push(path, EventType.CREATE);
      if (this.descends(st)) await this.addDir(path, !renamed);
      return;
    }
    if (kind === "rename") {
      // Same inode under the same name: nothing changed for a reader. A directory's chmod or
      // chown comes this way (inotify marks it IN_ISDIR, which Node reports as a rename).
      if (st.isDirectory()) await this.rewatch(path, st);
      return;
    }
    // inotify reports one write as several modifications: only what changed since the last look
    // is reported, once.
    const before = this.seen.get(path);
    const now = seen(st);
    this.seen.set(path, now);
    if (!before || now.content !== before.content) await this.push(path, EventType.WRITE);
    if (before && now.attrs !== before.attrs) await this.push(path, EventType.CHMOD);
  }

  /**
   * A subdirectory closed to the user since it was watched is watched no more, and one opened to
   * them is watched from then on (what it holds is not announced, as for one moved in).
   */
  private async rewatch(path: string, st: BigIntStats): Promise<void> {
    const watched = this.dirs.has(path);
    if (watched && !this.descends(st)) this.dropDir(path);
    else if (!watched && this.descends(st)) await this.addDir(path, false);
  }

  private event(path: string, type: EventType): FilesystemEvent {
    return create(FilesystemEventSchema, { name: relative(this.root, path), type });
  }

  private async push(path: string, type: EventType): Promise<void> {
    const event = this.event(path, type);
    if (this.options.includeEntry) event.entry = await entryInfo(path).catch(() => undefined);
    if (this.closed) return;
    this.slots.push({ event });
    this.flush();
  }

  private pushVanished(path: string, id: string): void {
    const slot: Slot = { event: this.event(path, EventType.REMOVE) };
    const since = Date.now();
    const settle = () => {
      // Events still waiting to be classified may hold the other half of a rename.
      if (this.backlog > 0 && Date.now() - since < renameWindowCapMs) {
        if (slot.vanished) slot.vanished.timer = setTimeout(settle, renameWindowMs);
        return;
      }
      slot.vanished = undefined;
      this.flush();
    };
    slot.vanished = { id, timer: setTimeout(settle, renameWindowMs) };
    this.slots.push(slot);
  }

  /** Hands out events in order, stopping at a vanished entry whose fate is still open. */
  private flush(): void {
    while (this.slots.length > 0 && !this.slots[0]?.vanished) {
      const slot = this.slots.shift();
      if (slot?.event && !this.closed) this.options.onEvent(slot.event);
    }
  }
}
