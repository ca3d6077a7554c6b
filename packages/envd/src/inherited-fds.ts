import { closeSync, readdirSync, readFileSync } from "node:fs";

/** O_CLOEXEC as /proc/<pid>/fdinfo prints a descriptor's flags (octal). */
const O_CLOEXEC = 0o2000000;

/**
 * Closes every descriptor envd holds without close-on-exec beyond stdio and `keep`, and returns
 * them. Node opens its own close-on-exec, and marks those it was started with too, but only up
 * to the first gap after fd 15 (libuv's uv_disable_stdio_inheritance): a higher one the agent's
 * parent leaked passes through the agent and bwrap into envd, where the sandbox's root could
 * reopen it through /proc/<envd>/fd.
 */
export function closeInheritedFds(keep: readonly number[]): number[] {
  const closed: number[] = [];
  let names: string[];
  try {
    names = readdirSync("/proc/self/fd");
  } catch {
    return closed; // no procfs: nothing to go by
  }
  for (const name of names) {
    const fd = Number(name);
    if (fd <= 2 || keep.includes(fd)) continue;
    let info: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
    } catch {
      continue; // the listing's own descriptor, closed since
    }
    const flags = Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(info)?.[1] ?? "", 8);
    if (Number.isNaN(flags) || (flags & O_CLOEXEC) !== 0) continue;
    try {
      closeSync(fd);
      closed.push(fd);
    } catch {
      // already gone
    }
  }
  return closed;
}
