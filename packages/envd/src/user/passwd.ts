import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { EnvdError } from "../errors.js";

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
 * Reads a small file synchronously: /etc/passwd and /etc/group are a few KiB, while each step of
 * an asynchronous read (open, fstat, read, close) is a trip through libuv's thread pool, and every
 * exec looks its user up. Sandbox root may put a FIFO or a huge file there: opened non-blocking,
 * only a regular file is read, and only up to a bound.
 */
function readUserFile(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > maxUserFileBytes)
      throw new EnvdError("internal", `${path} is not a regular file of at most 4 MiB`);
    const buf = Buffer.allocUnsafe(st.size);
    let read = 0;
    while (read < buf.length) {
      const n = readSync(fd, buf, read, buf.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return buf.toString("utf8", 0, read);
  } finally {
    closeSync(fd);
  }
}

function readPasswd(root: string): PasswdEntry[] {
  const text = readUserFile(`${root}/etc/passwd`);
  return parseColonFile(text).map(
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
  let text = "";
  try {
    text = readUserFile(`${root}/etc/group`);
  } catch {
    return [...groups];
  }
  for (const [, , gid = "", members = ""] of parseColonFile(text)) {
    if (members.split(",").includes(user.name)) groups.add(Number(gid));
  }
  return [...groups];
}

/**
 * Looks a user up by name (or numeric uid) in /etc/passwd and /etc/group. Read on every call:
 * users may be added inside a sandbox at any time, and the files are tiny.
 */
export async function lookupUser(nameOrUid: string, root = ""): Promise<UserInfo> {
  const entries = readPasswd(root);
  const entry = /^\d+$/.test(nameOrUid)
    ? entries.find((e) => e.uid === Number(nameOrUid))
    : entries.find((e) => e.name === nameOrUid);
  if (!entry) throw new EnvdError("invalid_argument", `unknown user "${nameOrUid}"`);
  return { ...entry, groups: readGroups(root, entry) };
}
