import type { Stats } from "node:fs";
import { lstat, readlink, realpath } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type EntryInfo, EntryInfoSchema, FileType } from "@wrenn/proto/filesystem";
import { type OwnerNames, ownerNames } from "./owners.js";

function fileType(st: Stats): FileType {
  if (st.isSymbolicLink()) return FileType.SYMLINK;
  if (st.isDirectory()) return FileType.DIRECTORY;
  if (st.isFile()) return FileType.FILE;
  return FileType.UNSPECIFIED;
}

function typeChar(st: Stats): string {
  if (st.isSymbolicLink()) return "l";
  if (st.isDirectory()) return "d";
  if (st.isCharacterDevice()) return "c";
  if (st.isBlockDevice()) return "b";
  if (st.isFIFO()) return "p";
  if (st.isSocket()) return "s";
  return "-";
}

/** `ls -l` style: "-rw-r--r--", "drwxrwxrwt", "lrwxrwxrwx", with setuid/setgid/sticky letters. */
export function permissionString(st: Stats): string {
  const m = st.mode;
  const triple = (shift: number, special: number, on: string, off: string) => {
    const r = m & (4 << shift) ? "r" : "-";
    const w = m & (2 << shift) ? "w" : "-";
    const x = m & (1 << shift);
    const s = m & special;
    return r + w + (s ? (x ? on : off) : x ? "x" : "-");
  };
  return (
    typeChar(st) +
    triple(6, 0o4000, "s", "S") +
    triple(3, 0o2000, "s", "S") +
    triple(0, 0o1000, "t", "T")
  );
}

/**
 * Where the symlink at `path` (read at `at`) leads, as an absolute path: fully resolved when the
 * target exists, else the link's text taken relative to the link's directory.
 */
async function symlinkTarget(path: string, at: string): Promise<string | undefined> {
  try {
    return await realpath(at);
  } catch {
    try {
      return resolve(dirname(path), await readlink(at));
    } catch {
      return undefined;
    }
  }
}

/**
 * EntryInfo for `path` from its lstat: a symlink is reported as a symlink, never followed. `at`
 * is where to read it when that is not `path` (a name inside an opened directory).
 */
export async function toEntryInfo(
  path: string,
  st: Stats,
  names: OwnerNames,
  at = path,
): Promise<EntryInfo> {
  return create(EntryInfoSchema, {
    name: basename(path) || path,
    type: fileType(st),
    path,
    size: BigInt(st.size),
    mode: st.mode & 0o777,
    permissions: permissionString(st),
    owner: names.user(st.uid),
    group: names.group(st.gid),
    modifiedTime: timestampFromMs(Math.floor(st.mtimeMs)),
    symlinkTarget: st.isSymbolicLink() ? await symlinkTarget(path, at) : undefined,
  });
}

/** lstat + EntryInfo for one path. */
export async function entryInfo(path: string): Promise<EntryInfo> {
  return toEntryInfo(path, await lstat(path), ownerNames());
}
