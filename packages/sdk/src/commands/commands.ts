import { CommandExitError, type CommandResult } from "../errors/index.js";
import { type ApiClient, Deadline, limitOf, type RequestOpts, requestOpts } from "../http/index.js";
import { CommandHandle, type HandleOptions, killProcess } from "./handle.js";
import { openSocket } from "./socket.js";

/** Where and how a command runs. */
export interface ProcessOpts {
  /** Working directory (default the user's home). */
  cwd?: string;
  /** Extra environment variables. */
  envs?: Record<string, string>;
  /** Sandbox user to run as (default `user`; `root` on request). */
  user?: string;
  /** Run `cmd` directly with these arguments instead of through `/bin/sh -c`. */
  args?: string[];
}

/** What can be written to a command's stdin by {@link Commands.run}. */
export type StdinSource =
  | string
  | Uint8Array
  | AsyncIterable<Uint8Array | string>
  | ReadableStream<Uint8Array>;

/** Options of {@link Commands.run}. */
export interface RunOpts extends ProcessOpts, RequestOpts {
  /** Each stdout chunk as it arrives. */
  onStdout?: (data: string) => void;
  /** Each stderr chunk as it arrives. */
  onStderr?: (data: string) => void;
  /** Written to stdin, which is then closed. */
  stdin?: StdinSource;
  /** Throw {@link CommandExitError} on a non-zero exit (default true). */
  throwOnError?: boolean;
  /**
   * The server kills the command after this long and the call fails with a TimeoutError;
   * default 60 000 ms in the foreground, no limit in the background; 0 or Infinity = no limit.
   * In the foreground the call also gives up by itself (TimeoutError) 10 s later, should the
   * server or the network have gone silent.
   */
  timeoutMs?: number;
  /** Return a handle as soon as the process starts instead of waiting for it. */
  background?: boolean;
  /** A name to find the process by later (`commands.connect(tag)`). */
  tag?: string;
}

/** A process running in a sandbox. */
export interface ProcessInfo {
  pid: number;
  tag?: string;
  cmd: string;
  args: string[];
  cwd?: string;
  envs: Record<string, string>;
}

/**
 * Options of {@link Commands.connect}. `timeoutMs` bounds attaching (default the client's, 60 s);
 * the output after that is bounded only by `signal`.
 */
export interface ConnectOpts extends RequestOpts {
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
  /** Throw {@link CommandExitError} from `wait()` on a non-zero exit (default true). */
  throwOnError?: boolean;
}

const DEFAULT_FOREGROUND_TIMEOUT_MS = 60_000;
/** Extra time the HTTP call waits past a command's own timeout, so the server's verdict arrives. */
const TIMEOUT_GRACE_MS = 10_000;

interface WireProcess {
  pid: number;
  tag: string | null;
  cmd: string;
  args: string[];
  cwd: string | null;
  envs: Record<string, string>;
}

/**
 * @internal A start or connect frame and how to attach a handle to it. `attachTimeoutMs` bounds
 * a connect until the server answered it (a start has no such bound: giving up on it while it
 * starts would leave the process running).
 */
export async function openHandle<H extends CommandHandle>(
  client: ApiClient,
  sandboxId: string,
  frame: Record<string, unknown>,
  options: HandleOptions & { attachTimeoutMs?: number },
  make: (...args: ConstructorParameters<typeof CommandHandle>) => H,
): Promise<H> {
  // An aborted call starts nothing: a start frame followed at once by a kill and a close would
  // leave the process running (the server drops what the client sent once it has gone).
  options.signal?.throwIfAborted();
  const deadline = new Deadline(
    {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.attachTimeoutMs !== undefined ? { timeoutMs: options.attachTimeoutMs } : {}),
    },
    `attaching to process ${String(frame.pid ?? frame.tag ?? "")} in sandbox ${sandboxId}`,
  );
  try {
    const socket = await openSocket(
      client,
      `/v1/sandboxes/${encodeURIComponent(sandboxId)}/exec/stream`,
      deadline.signal,
    );
    if (deadline.signal.aborted) {
      socket.close();
      throw deadline.signal.reason;
    }
    const handle = make(socket, client, sandboxId, options);
    await socket.send(JSON.stringify(frame));
    const gaveUp = new Promise<never>((_, reject) => {
      deadline.signal.addEventListener("abort", () => reject(deadline.signal.reason), {
        once: true,
      });
    });
    gaveUp.catch(() => {});
    try {
      await Promise.race([handle.whenStarted(), gaveUp]);
    } catch (err) {
      handle.disconnect(); // nothing once the caller's abort has already ended it
      throw err;
    }
    return handle;
  } finally {
    deadline.release();
  }
}

const stripUndefined = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** Runs and attaches to processes in one sandbox: `sandbox.commands`. */
export class Commands {
  /** @internal */
  constructor(
    private readonly client: ApiClient,
    private readonly sandboxId: string,
  ) {}

  private get base() {
    return `/v1/sandboxes/${encodeURIComponent(this.sandboxId)}`;
  }

  /**
   * Runs a command and waits for it; a non-zero exit throws {@link CommandExitError} unless
   * `throwOnError: false`. Without `args` it runs as `/bin/sh -c cmd`.
   */
  run(cmd: string, opts?: RunOpts & { background?: false }): Promise<CommandResult>;
  /** Starts a command and returns its handle once it runs. */
  run(cmd: string, opts: RunOpts & { background: true }): Promise<CommandHandle>;
  async run(cmd: string, opts: RunOpts = {}): Promise<CommandResult | CommandHandle> {
    const timeoutMs = limitOf(
      opts.timeoutMs ?? (opts.background ? 0 : DEFAULT_FOREGROUND_TIMEOUT_MS),
    );
    const streaming =
      opts.background || opts.onStdout || opts.onStderr || opts.stdin !== undefined || opts.tag;
    // One request/response when nothing is streamed and nothing may need to kill it mid-way.
    if (!streaming && !opts.signal && timeoutMs > 0) return this.runOnce(cmd, opts, timeoutMs);

    // The server ends a foreground command at timeoutMs and says so; past that (and a grace for
    // its verdict to arrive) a silent server or network must not hold the call forever.
    const deadline =
      !opts.background && timeoutMs > 0
        ? new Deadline(
            {
              ...(opts.signal ? { signal: opts.signal } : {}),
              timeoutMs: timeoutMs + TIMEOUT_GRACE_MS,
            },
            `waiting for the server to end the command in sandbox ${this.sandboxId}`,
          )
        : undefined;
    try {
      return await this.stream(cmd, opts, timeoutMs, deadline?.signal ?? opts.signal);
    } finally {
      deadline?.release();
    }
  }

  /** Runs `cmd` over the exec stream; `signal` aborting kills it. */
  private async stream(
    cmd: string,
    opts: RunOpts,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<CommandResult | CommandHandle> {
    const handle = await openHandle(
      this.client,
      this.sandboxId,
      stripUndefined({
        type: "start",
        cmd,
        args: opts.args,
        cwd: opts.cwd,
        envs: opts.envs,
        user: opts.user,
        tag: opts.tag,
        stdin: opts.stdin !== undefined || opts.background ? true : undefined,
        timeout_ms: timeoutMs || undefined,
      }),
      {
        ...(opts.onStdout ? { onStdout: opts.onStdout } : {}),
        ...(opts.onStderr ? { onStderr: opts.onStderr } : {}),
        ...(signal ? { signal } : {}),
        ...(opts.throwOnError !== undefined ? { throwOnError: opts.throwOnError } : {}),
      },
      (...args) => new CommandHandle(...args),
    );
    if (opts.stdin !== undefined) {
      const writing = pipeStdin(handle, opts.stdin);
      writing.catch(() => {}); // a background write's failure shows in wait()
      if (!opts.background) {
        // A command may end before it read all of its stdin (`head`): its result is then the
        // answer, not the writes that had nowhere to go, nor a source that never ends.
        await Promise.race([writing, handle.whenEnded()]).catch(async (err: unknown) => {
          if (handle.ended) return;
          // The source failed: the caller has no handle to end the waiting command with.
          await handle.kill().catch(() => {});
          throw err;
        });
      }
    }
    return opts.background ? handle : handle.wait();
  }

  private async runOnce(cmd: string, opts: RunOpts, timeoutMs: number): Promise<CommandResult> {
    const answer = await this.client.json<{
      stdout: string;
      stderr: string;
      exit_code: number;
      duration_ms: number;
    }>({
      method: "POST",
      path: `${this.base}/exec`,
      json: stripUndefined({
        cmd,
        args: opts.args,
        cwd: opts.cwd,
        envs: opts.envs,
        user: opts.user,
        timeout_ms: timeoutMs,
      }),
      inSandbox: true,
      timeoutMs: timeoutMs + TIMEOUT_GRACE_MS,
    });
    const result: CommandResult = {
      stdout: answer.stdout,
      stderr: answer.stderr,
      exitCode: answer.exit_code,
      durationMs: answer.duration_ms,
    };
    if (result.exitCode !== 0 && opts.throwOnError !== false) throw new CommandExitError(result);
    return result;
  }

  /** Processes running in the sandbox. */
  async list(opts: RequestOpts = {}): Promise<ProcessInfo[]> {
    const answer = await this.client.json<{ processes: WireProcess[] }>({
      method: "GET",
      path: `${this.base}/processes`,
      inSandbox: true,
      ...requestOpts(opts),
    });
    return answer.processes.map((p) => ({
      pid: p.pid,
      ...(p.tag ? { tag: p.tag } : {}),
      cmd: p.cmd,
      args: p.args,
      ...(p.cwd ? { cwd: p.cwd } : {}),
      envs: p.envs,
    }));
  }

  /** Attaches to a running process by pid or tag; output from now on. */
  async connect(pidOrTag: number | string, opts: ConnectOpts = {}): Promise<CommandHandle> {
    return openHandle(
      this.client,
      this.sandboxId,
      typeof pidOrTag === "number"
        ? { type: "connect", pid: pidOrTag }
        : { type: "connect", tag: pidOrTag },
      {
        ...(opts.onStdout ? { onStdout: opts.onStdout } : {}),
        ...(opts.onStderr ? { onStderr: opts.onStderr } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.throwOnError !== undefined ? { throwOnError: opts.throwOnError } : {}),
        attachTimeoutMs: opts.timeoutMs ?? this.client.defaultTimeoutMs,
      },
      (...args) => new CommandHandle(...args),
    );
  }

  /** Kills a process (SIGKILL); false when it does not exist. */
  kill(pid: number, opts: RequestOpts = {}): Promise<boolean> {
    return killProcess(this.client, this.sandboxId, pid, opts);
  }

  /** Writes to the stdin of a process you are not attached to. */
  async sendStdin(pid: number, data: string | Uint8Array, opts: RequestOpts = {}): Promise<void> {
    await this.client.json({
      method: "POST",
      path: `${this.base}/processes/${pid}/stdin`,
      json:
        typeof data === "string"
          ? { data, encoding: "utf8" }
          : { data: toBase64(data), encoding: "base64" },
      inSandbox: true,
      ...requestOpts(opts),
    });
  }

  /** Closes the stdin of a process you are not attached to. */
  async closeStdin(pid: number, opts: RequestOpts = {}): Promise<void> {
    await this.client.json({
      method: "POST",
      path: `${this.base}/processes/${pid}/close-stdin`,
      idempotent: true,
      inSandbox: true,
      ...requestOpts(opts),
    });
  }
}

/** Writes all of `source` to the handle's stdin, then closes it. */
async function pipeStdin(handle: CommandHandle, source: StdinSource): Promise<void> {
  if (typeof source === "string" || source instanceof Uint8Array) {
    await handle.sendStdin(source);
  } else {
    const iterable =
      typeof ReadableStream !== "undefined" && source instanceof ReadableStream
        ? readableToIterable(source)
        : (source as AsyncIterable<Uint8Array | string>);
    for await (const chunk of iterable) await handle.sendStdin(chunk);
  }
  await handle.closeStdin();
}

async function* readableToIterable(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
