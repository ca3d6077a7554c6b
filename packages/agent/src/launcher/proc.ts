import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

export interface ProcStat {
  /** One-letter state: R, S, D, Z (zombie), X (dead), ... */
  state: string;
  ppid: number;
  /** Field 22: start time in clock ticks after boot; with the pid, it names one process. */
  startTime: number;
}

/**
 * Reads /proc/<pid>/stat, or undefined when the process is gone. Read synchronously: the kernel
 * writes it from the task's fields without waiting on anything, while fs.promises' open, stat,
 * read and close are four trips to the thread pool (HostWatch reads it for every sandbox).
 */
export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    state: fields[0] ?? "",
    ppid: Number(fields[1]),
    startTime: Number(fields[19]),
  };
}

/** Direct children of a process (needs CONFIG_PROC_CHILDREN, set in Debian kernels). */
export async function childPids(pid: number): Promise<number[]> {
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8");
    return text.split(" ").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
