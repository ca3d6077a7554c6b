/** What kind of entry a path is. */
export type EntryType = "file" | "dir" | "symlink" | "unknown";

/** One file, directory or link in a sandbox. */
export interface EntryInfo {
  /** The last path segment. */
  name: string;
  /** The absolute path. */
  path: string;
  type: EntryType;
  /** Size in bytes. */
  size: number;
  /** Unix mode bits (e.g. `0o644`). */
  mode: number;
  /** Mode as `ls -l` shows it, e.g. `-rw-r--r--`. */
  permissions: string;
  owner: string;
  group: string;
  modifiedTime?: Date;
  /** Where a symlink points. */
  symlinkTarget?: string;
}

/** What {@link Files.write} wrote. */
export interface WriteInfo {
  name: string;
  /** The absolute path written. */
  path: string;
  type: EntryType;
}

/**
 * Data to write. Strings are UTF-8; streams (web `ReadableStream`, Node readables and any
 * async iterable of bytes) are sent as they are read, never buffered whole.
 */
export type WriteData =
  | string
  | Uint8Array
  | ArrayBuffer
  | Blob
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array | string>;

/** A filesystem change seen by {@link Files.watchDir}. */
export interface FilesystemEvent {
  type: "create" | "write" | "remove" | "rename" | "chmod";
  /** The changed path, relative to the watched directory. */
  name: string;
}

/** A running watch; {@link WatchHandle.stop} ends it. */
export interface WatchHandle {
  /** Stops watching (the server stops its watcher); no `onExit` error follows. */
  stop(): Promise<void>;
}

/** The server's snake_case entry. */
export interface WireEntry {
  name: string;
  type: EntryType;
  path: string;
  size: number;
  mode: number;
  permissions: string;
  owner: string;
  group: string;
  modified_time: string | null;
  symlink_target: string | null;
}

export function entryFromWire(e: WireEntry): EntryInfo {
  return {
    name: e.name,
    path: e.path,
    type: e.type,
    size: e.size,
    mode: e.mode,
    permissions: e.permissions,
    owner: e.owner,
    group: e.group,
    ...(e.modified_time ? { modifiedTime: new Date(e.modified_time) } : {}),
    ...(e.symlink_target ? { symlinkTarget: e.symlink_target } : {}),
  };
}
