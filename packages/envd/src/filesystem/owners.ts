import { readFile, stat } from "node:fs/promises";

/** Names of uids and gids, from /etc/passwd and /etc/group. */
export interface OwnerNames {
  user(uid: number): string;
  group(gid: number): string;
}

interface Table {
  stamp: string;
  names: Map<number, string>;
}

const cache = new Map<string, Table>();

/** id → name from a colon file, re-read only when the file changed (users come and go in a sandbox). */
async function table(file: string): Promise<Map<number, string>> {
  let stamp = "missing";
  try {
    const st = await stat(file);
    stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
  } catch {
    // No such file: every id shows as a number.
  }
  const cached = cache.get(file);
  if (cached?.stamp === stamp) return cached.names;
  const names = new Map<number, string>();
  if (stamp !== "missing") {
    const text = await readFile(file, "utf8").catch(() => "");
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const [name = "", , id = ""] = line.split(":");
      const num = Number(id);
      if (name && id !== "" && Number.isInteger(num) && !names.has(num)) names.set(num, name);
    }
  }
  cache.set(file, { stamp, names });
  return names;
}

export async function ownerNames(): Promise<OwnerNames> {
  const [users, groups] = await Promise.all([table("/etc/passwd"), table("/etc/group")]);
  return {
    user: (uid) => users.get(uid) ?? String(uid),
    group: (gid) => groups.get(gid) ?? String(gid),
  };
}
