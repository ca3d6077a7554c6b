import { type BigIntStats, statSync } from "node:fs";
import { EnvdError } from "../errors.js";
import { readSmallFile } from "../small-file.js";

/** Everything needed to run a process or touch a file as a given user. */
export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary group ids (including the primary group). */
  groups: number[];
  home: string;
  shell: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

function parseColonFile(text: string): string[][] {
  return text
    .split("\n")
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => line.split(":"));
}

/** The most of /etc/passwd or /etc/group read. */
const maxUserFileBytes = 4 * 1024 * 1024;

/**
 * A file changed this recently may change again within the same timestamp tick (file times come
 * from a coarse clock), unseen by a comparison of times: such a file is read, never cached.
 */
const settledNs = 2_000_000_000n;

interface CachedFile {
  /** Device, inode, size and both file times: a write, rename or mount over the path changes it. */
  version: string;
  rows: string[][];
}

const cache = new Map<string, CachedFile>();

function versionOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * The rows of /etc/passwd or /etc/group. Every exec looks its user up, so a file left alone since
 * it was last read is served from memory for the price of one stat; users added inside the
 * sandbox show at once, since adding one changes the file.
 */
export function readColonFile(path: string): string[][] {
  const cached = cache.get(path);
  if (cached) {
    const st = statSync(path, { bigint: true, throwIfNoEntry: false });
    if (st && versionOf(st) === cached.version) return cached.rows;
    cache.delete(path);
  }
  // /etc/passwd and /etc/group are a few KiB.
  const { text, stats } = readSmallFile(path, maxUserFileBytes);
  const rows = parseColonFile(text);
  const settled = BigInt(Date.now()) * 1_000_000n - stats.ctimeNs > settledNs;
  if (settled) cache.set(path, { version: versionOf(stats), rows });
  return rows;
}

function readPasswd(root: string): PasswdEntry[] {
  return readColonFile(`${root}/etc/passwd`).map(
    ([name = "", , uid = "", gid = "", , home = "/", shell = ""]) => ({
      name,
      uid: Number(uid),
      gid: Number(gid),
      home: home || "/",
      shell: shell || "/bin/sh",
    }),
  );
}

function readGroups(root: string, user: PasswdEntry): number[] {
  const groups = new Set([user.gid]);
  let rows: string[][];
  try {
    rows = readColonFile(`${root}/etc/group`);
  } catch {
    return [...groups];
  }
  for (const [, , gid = "", members = ""] of rows) {
    if (members.split(",").includes(user.name)) groups.add(Number(gid));
  }
  return [...groups];
}

/**
 * Looks a user up by name (or numeric uid) in /etc/passwd and /etc/group, as they are now: users
 * may be added inside a sandbox at any time.
 */
export async function lookupUser(nameOrUid: string, root = ""): Promise<UserInfo> {
  const entries = readPasswd(root);
  const entry = /^\d+$/.test(nameOrUid)
    ? entries.find((e) => e.uid === Number(nameOrUid))
    : entries.find((e) => e.name === nameOrUid);
  if (!entry) throw new EnvdError("invalid_argument", `unknown user "${nameOrUid}"`);
  return { ...entry, groups: readGroups(root, entry) };
}
