import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The built `wrenn` binary, run the way users run it. */
export const BIN = fileURLToPath(new URL("../../bin/run.cjs", import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Piped to stdin (then closed); without it stdin is /dev/null. */
  input?: string | Buffer;
  timeoutMs?: number;
  /** Working directory (default: the test's). */
  cwd?: string;
}

/** Runs `wrenn …args` to completion (SIGKILL by pid past the timeout). */
export function wrenn(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: options.env ?? process.env,
      ...(options.cwd && { cwd: options.cwd }),
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (d: Buffer) => out.push(d));
    child.stderr?.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code,
        stdout: stdoutBytes.toString(),
        stderr: Buffer.concat(err).toString(),
        stdoutBytes,
      });
    });
    if (options.input !== undefined && child.stdin) child.stdin.end(options.input);
  });
}
