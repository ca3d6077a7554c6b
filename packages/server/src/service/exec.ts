import { createClient } from "@connectrpc/connect";
import { Process, Signal } from "@wrenn/proto/process";
import type { Logger } from "pino";
import { ServerError } from "../errors.js";
import { envdTransport } from "../hosts/envd-transport.js";
import { fromAgentError } from "./agent-errors.js";
import { elapsed } from "./elapsed.js";
import { startFailure } from "./processes.js";
import type { SandboxService } from "./sandboxes.js";

export interface ExecInput {
  /** Without `args`, run through `/bin/sh -c cmd`; with `args`, executed directly. */
  cmd: string;
  args?: string[];
  cwd?: string;
  envs?: Record<string, string>;
  /** The sandbox user to run as; envd's default (`user`) otherwise. */
  user?: string;
  /** Default 60 s; the process is killed (SIGKILL) when it runs longer. */
  timeoutMs?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
  /** True when an output stream went past `MAX_OUTPUT_BYTES` and its tail was dropped. */
  truncated: boolean;
}

export const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
export const MAX_EXEC_TIMEOUT_MS = 3_600_000;
/** Per stream: the server holds the whole output of a sync exec, so it is bounded. */
export const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

class Output {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;
  truncated = false;

  push(chunk: Uint8Array): void {
    const room = MAX_OUTPUT_BYTES - this.size;
    if (room <= 0) {
      this.truncated ||= chunk.length > 0;
      return;
    }
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.truncated ||= kept.length < chunk.length;
    this.chunks.push(kept);
    this.size += kept.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

/** Runs commands to completion in a team's running sandbox (envd's Process service). */
export class ExecService {
  constructor(
    private readonly sandboxes: SandboxService,
    private readonly logger: Logger,
  ) {}

  async exec(teamId: string, id: string, input: ExecInput): Promise<ExecResult> {
    const started = performance.now();
    const host = await this.sandboxes.reachable(teamId, id);
    const client = createClient(Process, envdTransport(host, id, input.user));
    const timeoutMs = input.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const [cmd, args] =
      input.args === undefined ? ["/bin/sh", ["-c", input.cmd]] : [input.cmd, input.args];
    const stdout = new Output();
    const stderr = new Output();
    const abort = new AbortController();
    let pid: number | undefined;
    let end: { exitCode: number; notStarted: string | null } | undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // Kill it in the sandbox, then stop listening: the stream ends with its exit either way.
      const kill =
        pid === undefined
          ? Promise.resolve()
          : client
              .sendSignal({
                process: { selector: { case: "pid", value: pid } },
                signal: Signal.SIGKILL,
              })
              .then(() => {});
      kill.catch(() => {}).finally(() => setTimeout(() => abort.abort(), 1_000).unref());
    }, timeoutMs);
    try {
      const events = client.start(
        {
          process: { cmd, args, envs: input.envs ?? {}, ...(input.cwd ? { cwd: input.cwd } : {}) },
        },
        { signal: abort.signal },
      );
      for await (const { event } of events) {
        const e = event?.event;
        if (e?.case === "start") pid = e.value.pid;
        else if (e?.case === "data") {
          if (e.value.output.case === "stdout") stdout.push(e.value.output.value);
          else if (e.value.output.case === "stderr") stderr.push(e.value.output.value);
        } else if (e?.case === "end")
          end = { exitCode: e.value.exitCode, notStarted: startFailure(e.value) };
      }
    } catch (err) {
      if (!timedOut) throw fromAgentError(err, "exec");
    } finally {
      clearTimeout(timer);
    }
    if (timedOut) {
      throw new ServerError("timeout", `command ran longer than ${timeoutMs} ms and was killed`);
    }
    if (!end) throw new ServerError("unavailable", "exec: envd ended the stream without an exit");
    if (end.notStarted) {
      // envd could not start it (no such binary, bad cwd): the caller's mistake, not a crash.
      throw new ServerError("invalid_argument", `exec: ${end.notStarted}`);
    }
    const durationMs = Math.round(elapsed(started));
    this.logger.debug({ op: "sandbox.exec", teamId, sandboxId: id, ms: durationMs }, "exec done");
    return {
      stdout: stdout.text(),
      stderr: stderr.text(),
      exitCode: end.exitCode,
      durationMs,
      truncated: stdout.truncated || stderr.truncated,
    };
  }
}
