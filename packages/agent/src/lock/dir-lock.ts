import { randomBytes } from "node:crypto";
import { link, mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { AgentError } from "../errors.js";
import { readProcStat } from "../launcher/index.js";

/** Who holds a lock or a claim: a pid and its start time, which together name one process. */
export interface ProcessStamp {
  pid: number;
  /** /proc/<pid>/stat field 22: a reused pid has another one. */
  start_time: number;
}

/** This process's stamp. */
export async function ownStamp(): Promise<ProcessStamp> {
  const stat = await readProcStat(process.pid);
  return { pid: process.pid, start_time: stat?.startTime ?? 0 };
}

/** True while the process the stamp names still runs (a reused pid does not count). */
export async function isStampAlive(stamp: ProcessStamp): Promise<boolean> {
  const stat = await readProcStat(stamp.pid);
  return !!stat && stat.state !== "Z" && stat.startTime === stamp.start_time;
}

/** A held {@link acquireDirLock} lock; `release` removes the lock file (idempotent). */
export interface DirLock {
  readonly file: string;
  release(): Promise<void>;
}

const LOCK_FILE = "wrenn.lock";

/**
 * Makes this process the only one using `dir` (an agent's or a server's state directory):
 * `<dir>/wrenn.lock` is created with O_EXCL and holds this process's pid and start time. A lock
 * left by a process that is gone (or whose pid now names another process) is taken over; a live
 * holder makes this fail with `failed_precondition` naming its pid. `what` names the user of the
 * directory in messages ("agent", "server").
 */
export async function acquireDirLock(dir: string, what: string): Promise<DirLock> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, LOCK_FILE);
  const stamp = await ownStamp();
  const body = `${JSON.stringify({ ...stamp, what })}\n`;
  // A stale lock moved aside in one round leaves the file free for the next.
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      const handle = await open(file, "wx", 0o600);
      try {
        await handle.writeFile(body);
      } finally {
        await handle.close();
      }
      let released = false;
      return {
        file,
        async release() {
          if (released) return;
          released = true;
          // Only our own lock: a later holder's file is not ours to remove.
          const holder = await readStamp(file);
          if (holder?.pid === stamp.pid && holder.start_time === stamp.start_time) {
            await rm(file, { force: true });
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw AgentError.from(err);
    }
    const holder = await readStamp(file);
    if (holder && (await isStampAlive(holder))) {
      throw new AgentError(
        "failed_precondition",
        `${dir} is in use by another ${what} (pid ${holder.pid}); stop it first, or use another directory`,
      );
    }
    // Dead holder, or a file cut short by a crash between create and write: stale. Moved aside
    // atomically rather than removed, so of two processes taking it over at once the one that
    // moves a fresh lock instead (the other's) can put it back.
    const aside = `${file}.stale-${randomBytes(4).toString("hex")}`;
    try {
      await rename(file, aside);
    } catch {
      continue;
    }
    const moved = await readStamp(aside);
    if (moved && (await isStampAlive(moved))) await link(aside, file).catch(() => {});
    await rm(aside, { force: true });
  }
  throw new AgentError("failed_precondition", `cannot take the lock ${file}: it keeps changing`);
}

async function readStamp(file: string): Promise<ProcessStamp | undefined> {
  try {
    const raw = JSON.parse(await readFile(file, "utf8")) as Partial<ProcessStamp>;
    if (typeof raw.pid !== "number" || typeof raw.start_time !== "number") return undefined;
    return { pid: raw.pid, start_time: raw.start_time };
  } catch {
    return undefined;
  }
}
