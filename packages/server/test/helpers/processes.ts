import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/** A program of the project run as a process of its own, its output kept in a log file. */
export interface Daemon {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** Resolves with its exit code (or signal name) once it has exited. */
  exited: Promise<number | string>;
  /** Ends it with `signal` and waits (SIGKILL after 10 s). */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnDaemon(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  logFile: string,
): Daemon {
  const log: WriteStream = createWriteStream(logFile, { flags: "a" });
  let text = "";
  const proc = spawn(process.execPath, [script, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const stream of [proc.stdout, proc.stderr]) {
    stream?.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
      log.write(chunk);
    });
  }
  const exited = new Promise<number | string>((resolve) => {
    proc.once("exit", (code, signal) => {
      log.end();
      resolve(code ?? signal ?? "unknown");
    });
  });
  return {
    name,
    proc,
    output: () => text,
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const killed = await Promise.race([exited, sleep(10_000).then(() => undefined)]);
      if (killed === undefined) {
        proc.kill("SIGKILL");
        await exited;
      }
    },
  };
}

/** Polls `check` until it returns something truthy; fails with `what` after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false | null>,
  timeoutMs = 30_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: last });
    }
    await sleep(everyMs);
  }
}
