import type { PipeChild } from "@wrenn/envd";
import { AgentError } from "../errors.js";
import { startHostCommand } from "./spawner.js";

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** A host command that exited non-zero; `stderr` is kept so callers can tell "already gone" apart. */
export class CommandError extends AgentError {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super("internal", `${command}: ${stderr.trim() || `exit ${exitCode}`}`, options);
  }
}

/**
 * Runs a host tool (ip, nft, mount, losetup, mkfs…) without a shell, feeding `input` on stdin
 * (without it, stdin is /dev/null).
 * Rejects with CommandError on a non-zero exit or a spawn failure (e.g. the tool is missing), and
 * after `timeoutMs` (the tool is killed).
 */
export async function runCommand(
  file: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  const command = [file, ...args].join(" ");
  let child: PipeChild;
  try {
    child = await startHostCommand(file, args, { stdin: options.input !== undefined });
  } catch (cause) {
    throw new CommandError(command, null, (cause as Error).message, { cause });
  }
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => err.push(chunk));
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => kill(child.pid, "SIGKILL"), options.timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString();
      const stderr = Buffer.concat(err).toString();
      if (code === 0) resolve({ stdout, stderr });
      else reject(new CommandError(command, code, stderr));
    });
    // A tool that exits before reading its stdin makes the write fail with EPIPE; the exit code
    // already says what went wrong.
    child.stdin?.on("error", () => {});
    child.stdin?.end(options.input);
  });
}

function kill(pid: number | undefined, signal: NodeJS.Signals): void {
  try {
    if (pid !== undefined) process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** One step of runCommands. */
export interface CommandSpec {
  file: string;
  args: readonly string[];
  input?: string;
}

const shellQuote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

/**
 * Runs commands one after another, stopping at the first failure, in one /bin/sh: one spawn
 * from Node instead of one per command, which is most of their cost on a busy host.
 */
export function runCommands(commands: readonly CommandSpec[]): Promise<CommandResult> {
  const script = commands
    .map((c, i) => `printf %s "\${${i + 1}}" | ${[c.file, ...c.args].map(shellQuote).join(" ")}`)
    .join(" && ");
  return runCommand("/bin/sh", ["-c", script, "sh", ...commands.map((c) => c.input ?? "")]);
}
