import { readColonFile } from "../user/passwd.js";

/** Names of uids and gids, from /etc/passwd and /etc/group. */
export interface OwnerNames {
  user(uid: number): string;
  group(gid: number): string;
}

/** id → name per version of a file's rows (readColonFile hands out the same rows until it changes). */
const tables = new WeakMap<string[][], Map<number, string>>();

/**
 * id → name from a colon file as it is now (users come and go in a sandbox). Read the way user
 * lookups read it: the sandbox may put a FIFO or a huge file there, which must not hang or swamp
 * envd; then, as for a missing file, every id shows as a number.
 */
function table(file: string): Map<number, string> {
  let rows: string[][];
  try {
    rows = readColonFile(file);
  } catch {
    return new Map();
  }
  let names = tables.get(rows);
  if (!names) {
    names = new Map();
    for (const [name = "", , id = ""] of rows) {
      const num = Number(id);
      if (name && id !== "" && Number.isInteger(num) && !names.has(num)) names.set(num, name);
    }
    tables.set(rows, names);
  }
  return names;
}

/** The names as the files are now (a cached table per version of each file). */
export function ownerNames(): OwnerNames {
  const users = table("/etc/passwd");
  const groups = table("/etc/group");
  return {
    user: (uid) => users.get(uid) ?? String(uid),
    group: (gid) => groups.get(gid) ?? String(gid),
  };
}
