import { once } from "node:events";
import {
  CommandExitError,
  type CommandHandle,
  type CommandResult,
  InvalidArgumentError,
  type Sandbox,
} from "@wrenn/sdk";
import { CliError } from "../errors/index.js";
import { enterRawMode } from "./terminal.js";

export interface ExecOptions {
  cwd?: string;
  envs?: Record<string, string>;
  user?: string;
}

/**
 * `wrenn exec <id> -- <words…>`: one word is shell code (`-- 'ls | wc -l'`); several are quoted
 * as words, so `-- echo '$HOME'` prints $HOME literally, as a direct exec would.
 */
export function commandLine(words: readonly string[]): string {
  if (words.length === 1) return words[0] ?? "";
  return words.map(shellQuote).join(" ");
}

export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A process exit code the local shell can carry (signals and envd's -1 become 1..255). */
export function localExitCode(code: number): number {
  return Number.isInteger(code) && code >= 0 && code <= 255 ? code : 1;
}

/**
 * A process that never started has no output of its own: say why, or the shell sees only exit
 * code 127 and an empty stderr. An unknown binary starts and ends at once with `error`; a start
 * the sandbox refuses (a missing --cwd, an unknown --user) is an InvalidArgumentError.
 */
function reportNotStarted(result: CommandResult): void {
  if (result.error) sayNotStarted(result.error);
}

const sayNotStarted = (why: string) =>
  process.stderr.write(`Error: The command did not start: ${why}\n`);

/** 127 (as for a command that never ran) for a start the sandbox refused; other errors thrown. */
function notStarted(err: unknown): number {
  if (!(err instanceof InvalidArgumentError)) throw err;
  sayNotStarted(err.message);
  return 127;
}

/**
 * Runs `cmd` with its stdout and stderr streamed byte for byte to ours and local stdin forwarded
 * when `pipeStdin`; resolves with its exit code. Ctrl-C kills the remote process (closing the
 * stream alone would leave it running).
 */
export async function runStreaming(
  sandbox: Sandbox,
  cmd: string,
  options: ExecOptions & { pipeStdin: boolean },
): Promise<number> {
  let handle: CommandHandle;
  try {
    handle = await sandbox.commands.run(cmd, {
      background: true,
      throwOnError: false,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.envs ? { envs: options.envs } : {}),
      ...(options.user ? { user: options.user } : {}),
      ...(options.pipeStdin ? { stdin: process.stdin } : {}),
    });
  } catch (err) {
    if (options.pipeStdin) process.stdin.destroy();
    return notStarted(err);
  }
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
    handle.kill().catch(() => {});
  };
  process.on("SIGINT", interrupt);
  try {
    for await (const chunk of handle) {
      const out = chunk.stream === "stderr" ? process.stderr : process.stdout;
      if (!out.write(chunk.data)) await once(out, "drain");
    }
    const result = await handle.wait();
    // 130: what a shell reports for a command ended by Ctrl-C.
    if (interrupted) return 130;
    reportNotStarted(result);
    return localExitCode(result.exitCode);
  } catch (err) {
    if (err instanceof CommandExitError) return localExitCode(err.exitCode);
    throw err;
  } finally {
    process.off("SIGINT", interrupt);
    // Stop reading a stdin pipe the remote process no longer wants, so we can exit.
    if (options.pipeStdin) process.stdin.destroy();
  }
}

/**
 * An interactive PTY session: raw mode, keys (Ctrl-C, Ctrl-D too) forwarded as bytes, window
 * size followed, the terminal restored however the session ends. Resolves with the exit code.
 */
export async function runInteractive(
  sandbox: Sandbox,
  cmd: string | undefined,
  options: ExecOptions,
): Promise<number> {
  const { stdin, stdout } = process;
  if (!stdin.isTTY || !stdout.isTTY) {
    throw new CliError(
      "invalid_argument",
      "An interactive session (-t) needs a terminal on stdin and stdout.",
      "Drop -t to stream output and pipe stdin: `echo hi | wrenn exec <id> -- cat`.",
    );
  }
  const size = () => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 });
  const restore = enterRawMode();
  const onResize = () => {
    pty.resize(size()).catch(() => {});
  };
  const onInput = (data: Buffer) => {
    pty.sendInput(data).catch(() => {});
  };
  let pty: Awaited<ReturnType<Sandbox["pty"]["create"]>>;
  let started = false;
  try {
    pty = await sandbox.pty.create({
      ...size(),
      onData: (data: Uint8Array) => stdout.write(data),
      ...(cmd ? { cmd } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.envs ? { envs: options.envs } : {}),
      ...(options.user ? { user: options.user } : {}),
    });
    started = true;
    stdin.on("data", onInput);
    stdin.resume();
    stdout.on("resize", onResize);
    const result = await pty.wait();
    restore();
    reportNotStarted(result);
    return localExitCode(result.exitCode);
  } catch (err) {
    if (err instanceof CommandExitError) return localExitCode(err.exitCode);
    if (started) throw err;
    restore();
    return notStarted(err);
  } finally {
    stdout.off("resize", onResize);
    stdin.off("data", onInput);
    stdin.pause();
    restore();
  }
}
