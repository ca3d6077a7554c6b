import { readFile } from "node:fs/promises";
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

async function readPasswd(root: string): Promise<PasswdEntry[]> {
  const text = await readFile(`${root}/etc/passwd`, "utf8");
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

async function readGroups(root: string, user: PasswdEntry): Promise<number[]> {
  const groups = new Set([user.gid]);
  let text = "";
  try {
    text = await readFile(`${root}/etc/group`, "utf8");
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
  const entries = await readPasswd(root);
  const entry = /^\d+$/.test(nameOrUid)
    ? entries.find((e) => e.uid === Number(nameOrUid))
    : entries.find((e) => e.name === nameOrUid);
  if (!entry) throw new EnvdError("invalid_argument", `unknown user "${nameOrUid}"`);
  return { ...entry, groups: await readGroups(root, entry) };
}
