import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { Process, type ProcessEvent, type ProcessSelector, Signal } from "@wrenn/proto/process";
import type { Logger } from "pino";
import { ServerError } from "../errors.js";
import { envdTransport } from "../hosts/envd-transport.js";
import { fromAgentError, fromBrokenStream, rethrowAgentError as rethrow } from "./agent-errors.js";
import type { AgentHost } from "./sandbox-types.js";
import type { SandboxService } from "./sandboxes.js";

/** How a caller names a running process of a sandbox. */
export type ProcessRef = { pid: number } | { tag: string };
export type SignalName = "SIGTERM" | "SIGKILL";
export type OutputStream = "stdout" | "stderr" | "pty";

export interface ProcessView {
  pid: number;
  tag: string | null;
  cmd: string;
  args: string[];
  cwd: string | null;
  envs: Record<string, string>;
}

export interface StartProcessInput {
  /** Without `args`, run through `/bin/sh -c cmd`; with `args`, executed directly. */
  cmd: string;
  args?: string[];
  cwd?: string;
  envs?: Record<string, string>;
  user?: string;
  /** Unique among the sandbox's running processes; `connect` can find it by this. */
  tag?: string;
  pty?: { cols: number; rows: number };
  /** Keep stdin open for `write`/`closeStdin` (default: closed at start). */
  stdin?: boolean;
  /** 0 or absent: no limit; else SIGKILL after this long and the stream fails with `timeout`. */
  timeoutMs?: number;
}

export interface ProcessEnd {
  exitCode: number;
  exited: boolean;
  status: string;
  /** Why envd could not start the process; null for one that ran (however it ended). */
  error: string | null;
}

/**
 * Why envd could not start the process of this `end` event, or null when it ran. envd's `error`
 * is E2B's, which also repeats the status of a process that failed ("exit status 7"); Wrenn's API
 * keeps `error` for a process that never ran (envd's status "not started").
 */
export function startFailure(end: { status: string; error?: string | undefined }): string | null {
  return end.status === "not started" ? (end.error ?? null) : null;
}

export type ProcessStreamEvent =
  | { type: "output"; stream: OutputStream; data: Uint8Array }
  | ({ type: "end" } & ProcessEnd);

type ProcessClient = Client<typeof Process>;

const signals: Record<SignalName, Signal> = { SIGTERM: Signal.SIGTERM, SIGKILL: Signal.SIGKILL };

function selector(ref: ProcessRef): ProcessSelector["selector"] {
  return "pid" in ref ? { case: "pid", value: ref.pid } : { case: "tag", value: ref.tag };
}

const nameOf = (ref: ProcessRef) => ("pid" in ref ? `pid ${ref.pid}` : `tag "${ref.tag}"`);

/**
 * One attached process: its output and exit as an async iterable (iterate it once), plus its
 * controls. Input is applied in the order it was given (close_stdin after the bytes before it).
 * `detach` stops listening and leaves the process running.
 */
export class ProcessStream implements AsyncIterable<ProcessStreamEvent> {
  /** Input bytes accepted but not yet handed to envd: callers pause their source above a bound. */
  pendingInput = 0;
  private input: Promise<unknown> = Promise.resolve();
  private timedOut = false;
  private detached = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly pid: number,
    readonly tag: string | null,
    /** true/false when known (started here, or output seen); undefined for an attached one. */
    private pty: boolean | undefined,
    private readonly events: AsyncIterator<{ event?: ProcessEvent }>,
    private readonly abort: AbortController,
    private readonly control: ProcessClient,
    timeoutMs: number,
  ) {
    if (timeoutMs > 0) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        // Kill it, then stop listening: its end is a timeout whatever envd reports.
        this.signal("SIGKILL")
          .catch(() => {})
          .finally(() => setTimeout(() => abort.abort(), 1_000).unref());
      }, timeoutMs);
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ProcessStreamEvent> {
    try {
      for (;;) {
        const next = await this.events.next();
        if (next.done) break;
        const e = next.value.event?.event;
        if (e?.case === "data" && e.value.output.case) {
          if (this.pty === undefined) this.pty = e.value.output.case === "pty";
          yield { type: "output", stream: e.value.output.case, data: e.value.output.value };
        } else if (e?.case === "end") {
          if (this.timedOut) break;
          const { exitCode, exited, status } = e.value;
          yield { type: "end", exitCode, exited, status, error: startFailure(e.value) };
          return;
        }
      }
    } catch (err) {
      if (!this.timedOut && !this.detached) throw fromBrokenStream(err, "process stream");
    } finally {
      clearTimeout(this.timer);
      this.abort.abort();
    }
    if (this.timedOut)
      throw new ServerError("timeout", "the process ran past timeout_ms and was killed");
    if (!this.detached)
      throw new ServerError("unavailable", "envd ended the stream without an exit");
  }

  /** Bytes to stdin, or to the terminal when the process has a PTY. */
  write(data: Uint8Array): Promise<void> {
    this.pendingInput += data.byteLength;
    return this.queue(() => this.send(data)).finally(() => {
      this.pendingInput -= data.byteLength;
    });
  }

  /** EOF on stdin, after every byte written before it. */
  closeStdin(): Promise<void> {
    return this.queue(() =>
      this.control
        .closeStdin({ process: { selector: this.selector } })
        .then(() => {}, rethrow("close stdin")),
    );
  }

  async resize(cols: number, rows: number): Promise<void> {
    if (this.pty === false)
      throw new ServerError("invalid_argument", "resize: the process has no PTY");
    await this.control
      .update({ process: { selector: this.selector }, pty: { size: { cols, rows } } })
      .catch((err: unknown) => {
        // envd says failed_precondition for "no PTY": the request, not the sandbox, is wrong.
        const failed = fromAgentError(err, "resize");
        throw failed.code === "failed_precondition"
          ? new ServerError("invalid_argument", failed.message, { cause: err })
          : failed;
      });
  }

  async signal(name: SignalName): Promise<void> {
    await this.control
      .sendSignal({ process: { selector: this.selector }, signal: signals[name] })
      .catch(rethrow("signal"));
  }

  /** Stops listening; the process keeps running (attach again with `connect`). */
  detach(): void {
    this.detached = true;
    clearTimeout(this.timer);
    this.abort.abort();
  }

  private get selector(): ProcessSelector["selector"] {
    return { case: "pid", value: this.pid };
  }

  private queue(op: () => Promise<void>): Promise<void> {
    const done = this.input.then(op);
    this.input = done.catch(() => {});
    return done;
  }

  private async send(data: Uint8Array): Promise<void> {
    this.pty = await writeInput(this.control, this.selector, data, this.pty);
  }
}

/**
 * Processes of a team's running sandbox through envd's Process service: start or attach to one as
 * a stream, list them, and signal or feed them by pid or tag.
 */
export class ProcessService {
  constructor(
    private readonly sandboxes: SandboxService,
    private readonly logger: Logger,
  ) {}

  /** Checks the sandbox can be driven now (not_found, failed_precondition when not running). */
  async open(teamId: string, id: string): Promise<SandboxProcesses> {
    return new SandboxProcesses(await this.sandboxes.reachable(teamId, id), id, this.logger);
  }

  async list(teamId: string, id: string): Promise<ProcessView[]> {
    return (await this.open(teamId, id)).list();
  }

  async signal(teamId: string, id: string, ref: ProcessRef, signal: SignalName): Promise<void> {
    const { control } = await this.open(teamId, id);
    await control
      .sendSignal({ process: { selector: selector(ref) }, signal: signals[signal] })
      .catch(rethrow(`signal ${nameOf(ref)}`));
  }

  /** Writes to stdin (or the PTY) of a running process. */
  async write(teamId: string, id: string, ref: ProcessRef, data: Uint8Array): Promise<void> {
    const { control } = await this.open(teamId, id);
    await writeInput(control, selector(ref), data, undefined);
  }

  async closeStdin(teamId: string, id: string, ref: ProcessRef): Promise<void> {
    const { control } = await this.open(teamId, id);
    await control
      .closeStdin({ process: { selector: selector(ref) } })
      .catch(rethrow(`close stdin of ${nameOf(ref)}`));
  }
}

/** One reachable sandbox's processes. */
export class SandboxProcesses {
  readonly control: ProcessClient;

  constructor(
    private readonly host: AgentHost,
    private readonly sandboxId: string,
    private readonly logger: Logger,
  ) {
    this.control = createClient(Process, envdTransport(host, sandboxId));
  }

  async list(): Promise<ProcessView[]> {
    const res = await this.control.list({}).catch(rethrow("list processes"));
    return res.processes.map((p) => ({
      pid: p.pid,
      tag: p.tag ?? null,
      cmd: p.config?.cmd ?? "",
      args: p.config?.args ?? [],
      cwd: p.config?.cwd || null,
      envs: p.config?.envs ?? {},
    }));
  }

  /** Starts a command and streams it from its first byte of output. */
  async start(input: StartProcessInput): Promise<ProcessStream> {
    const client = input.user
      ? createClient(Process, envdTransport(this.host, this.sandboxId, input.user))
      : this.control;
    const [cmd, args] =
      input.args === undefined ? ["/bin/sh", ["-c", input.cmd]] : [input.cmd, input.args];
    const abort = new AbortController();
    const events = client.start(
      {
        process: { cmd, args, envs: input.envs ?? {}, ...(input.cwd ? { cwd: input.cwd } : {}) },
        ...(input.pty ? { pty: { size: input.pty } } : {}),
        ...(input.tag !== undefined ? { tag: input.tag } : {}),
        stdin: input.stdin ?? false,
      },
      { signal: abort.signal },
    );
    const iterator = events[Symbol.asyncIterator]();
    const pid = await this.firstPid(iterator, abort, "start");
    this.logger.debug(
      { op: "process.start", sandboxId: this.sandboxId, pid, tag: input.tag },
      "process started",
    );
    return new ProcessStream(
      pid,
      input.tag ?? null,
      input.pty !== undefined,
      iterator,
      abort,
      this.control,
      input.timeoutMs ?? 0,
    );
  }

  /** Attaches to a running process: its output from now on, and its exit. */
  async connect(ref: ProcessRef): Promise<ProcessStream> {
    const abort = new AbortController();
    const events = this.control.connect(
      { process: { selector: selector(ref) } },
      { signal: abort.signal },
    );
    const iterator = events[Symbol.asyncIterator]();
    const [pid, listed] = await Promise.all([
      this.firstPid(iterator, abort, `connect to ${nameOf(ref)}`),
      // Only the listing knows the tag of a process attached by pid.
      "pid" in ref ? this.list().catch(() => []) : Promise.resolve([]),
    ]);
    const tag = "tag" in ref ? ref.tag : (listed.find((p) => p.pid === pid)?.tag ?? null);
    return new ProcessStream(pid, tag, undefined, iterator, abort, this.control, 0);
  }

  private async firstPid(
    iterator: AsyncIterator<{ event?: ProcessEvent }>,
    abort: AbortController,
    context: string,
  ): Promise<number> {
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done) break;
        const e = next.value.event?.event;
        if (e?.case === "start") return e.value.pid;
      }
    } catch (err) {
      abort.abort();
      throw fromAgentError(err, context);
    }
    abort.abort();
    throw new ServerError("unavailable", `${context}: envd ended the stream before the start`);
  }
}

/**
 * Writes `data` as stdin, or as terminal input when the process has a PTY; when that is not known
 * yet, tries stdin first (envd refuses the wrong kind without writing anything). Returns whether
 * the process has a PTY.
 */
async function writeInput(
  control: ProcessClient,
  target: ProcessSelector["selector"],
  data: Uint8Array,
  pty: boolean | undefined,
): Promise<boolean> {
  const as = (kind: "stdin" | "pty") =>
    control.sendInput({
      process: { selector: target },
      input: { input: { case: kind, value: data } },
    });
  if (pty !== undefined) {
    await as(pty ? "pty" : "stdin").catch(rethrow("input"));
    return pty;
  }
  try {
    await as("stdin");
    return false;
  } catch (err) {
    if (!(err instanceof ConnectError && err.code === Code.FailedPrecondition))
      throw fromAgentError(err, "input");
    await as("pty").catch(() => {
      throw fromAgentError(err, "input");
    });
    return true;
  }
}
