import {
  CommandExitError,
  type CommandResult,
  ConnectionError,
  errorFromWire,
  NotFoundError,
  WrennError,
} from "../errors/index.js";
import { type ApiClient, type RequestOpts, requestOpts } from "../http/index.js";
import type { ExecSocket, SocketMessage } from "./socket.js";

/** Which stream a chunk of output came from. */
export type OutputStream = "stdout" | "stderr" | "pty";

/** One chunk of a command's output, as it arrived. */
export interface OutputChunk {
  stream: OutputStream;
  data: Uint8Array;
  /** The chunk decoded as UTF-8 (a multi-byte character may be split across chunks). */
  text(): string;
}

/** Output callbacks of a command. One that throws kills it, and `wait()` rejects with its error. */
export interface OutputCallbacks {
  /** Each stdout chunk, decoded as UTF-8 (characters split across chunks are joined). */
  onStdout?: (data: string) => void;
  /** Each stderr chunk, decoded as UTF-8. */
  onStderr?: (data: string) => void;
  /** Each PTY output chunk, raw. */
  onData?: (data: Uint8Array) => void;
}

/** Options shared by a handle's creation. */
export interface HandleOptions extends OutputCallbacks {
  /** Throw {@link CommandExitError} from `wait()` on a non-zero exit (default true). */
  throwOnError?: boolean;
  /** Aborting it kills the process and rejects `wait()` with the signal's reason. */
  signal?: AbortSignal;
}

const STREAMS: Record<number, OutputStream> = { 1: "stdout", 2: "stderr", 3: "pty" };
/** The server refuses a client frame past 1 MiB (close 4413): stdin goes in pieces no larger. */
const STDIN_FRAME_BYTES = 1024 * 1024;
const encoder = new TextEncoder();

interface EndFrame {
  type: "end";
  exit_code: number;
  exited: boolean;
  status?: string;
  error?: string | null;
}
interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
}
interface StartFrame {
  type: "start";
  pid: number;
  tag?: string | null;
}

/**
 * A process in a sandbox, attached over the exec stream. Output is accumulated in `stdout` and
 * `stderr`, passed to the callbacks and available as an async iterable of chunks.
 */
export class CommandHandle implements AsyncIterable<OutputChunk> {
  private startFrame: StartFrame | undefined;
  private out = "";
  private err = "";
  private readonly decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  private readonly started: Promise<void>;
  private readonly done: Promise<CommandResult>;
  private settle!: { resolve(r: CommandResult): void; reject(e: unknown): void };
  private markStarted!: { resolve(): void; reject(e: unknown): void };
  private finished = false;
  private detached = false;
  private readonly startedAt = Date.now();
  // Chunks wait here until an iterator takes them; only kept while someone may iterate.
  private backlog: OutputChunk[] | undefined = [];
  private readonly waiters: (() => void)[] = [];
  private readonly onAbort: () => void;

  /** @internal */
  constructor(
    protected readonly socket: ExecSocket,
    private readonly client: ApiClient,
    private readonly sandboxId: string,
    private readonly options: HandleOptions,
  ) {
    this.started = new Promise((resolve, reject) => {
      this.markStarted = { resolve, reject };
    });
    this.done = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Nobody may ever call wait(); a failure must not become an unhandled rejection.
    this.done.catch(() => {});
    this.started.catch(() => {});
    socket.onMessage = (m) => this.receive(m);
    socket.onClose = (code, reason) => this.closed(code, reason);
    this.onAbort = () => this.killAndEnd(options.signal?.reason);
    if (options.signal?.aborted) queueMicrotask(this.onAbort);
    else options.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  /** @internal Resolves once the server reported the process's pid. */
  whenStarted(): Promise<void> {
    return this.started;
  }

  /** @internal True once the stream has ended, however it ended. */
  get ended(): boolean {
    return this.finished;
  }

  /** @internal Resolves once the stream has ended, however it ended. */
  whenEnded(): Promise<void> {
    return this.done.then(
      () => {},
      () => {},
    );
  }

  /** The process id inside the sandbox. */
  get pid(): number {
    return this.startFrame?.pid ?? 0;
  }

  /** The tag the process was started with, if any. */
  get tag(): string | undefined {
    return this.startFrame?.tag ?? undefined;
  }

  /** stdout received so far. */
  get stdout(): string {
    return this.out;
  }

  /** stderr received so far. */
  get stderr(): string {
    return this.err;
  }

  /**
   * Waits for the process to end. Rejects with {@link CommandExitError} on a non-zero exit
   * (unless `throwOnError: false`), or with the typed error the stream ended with.
   */
  async wait(): Promise<CommandResult> {
    const result = await this.done;
    if (result.exitCode !== 0 && this.options.throwOnError !== false) {
      throw new CommandExitError(result);
    }
    return result;
  }

  /** Kills the process (SIGKILL); false when it no longer exists. */
  async kill(): Promise<boolean> {
    if (this.finished && !this.detached) return false;
    if (!this.detached) {
      await this.socket.send(JSON.stringify({ type: "signal", signal: "SIGKILL" }));
      return true;
    }
    return killProcess(this.client, this.sandboxId, this.pid, {});
  }

  /** Writes to the process's stdin (the command must have been started with stdin open). */
  async sendStdin(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    for (let at = 0; at < bytes.byteLength; at += STDIN_FRAME_BYTES) {
      await this.socket.send(bytes.subarray(at, at + STDIN_FRAME_BYTES));
    }
  }

  /** Closes the process's stdin (EOF). */
  async closeStdin(): Promise<void> {
    await this.socket.send(JSON.stringify({ type: "close_stdin" }));
  }

  /** Stops receiving output; the process keeps running (reattach with `commands.connect`). */
  disconnect(): void {
    if (this.finished) return;
    this.detached = true;
    this.socket.close();
    this.finish(
      undefined,
      new WrennError("disconnected from the command; it keeps running", { code: "disconnected" }),
    );
  }

  /** Output chunks from when iteration starts (earlier ones are kept until the first iterator). */
  async *[Symbol.asyncIterator](): AsyncGenerator<OutputChunk, void, undefined> {
    const queue = this.backlog ?? [];
    this.backlog = undefined;
    this.iterators.push(queue);
    try {
      for (;;) {
        const chunk = queue.shift();
        if (chunk) {
          yield chunk;
          continue;
        }
        if (this.finished) {
          const failure = this.failure;
          if (failure !== undefined && !this.detached) throw failure;
          return;
        }
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
    } finally {
      this.iterators.splice(this.iterators.indexOf(queue), 1);
    }
  }

  private readonly iterators: OutputChunk[][] = [];
  private failure: unknown;

  protected send(frame: object): Promise<void> {
    return this.socket.send(JSON.stringify(frame));
  }

  private receive(message: SocketMessage): void {
    if (typeof message !== "string") {
      this.output(message);
      return;
    }
    let frame: StartFrame | EndFrame | ErrorFrame;
    try {
      frame = JSON.parse(message) as StartFrame | EndFrame | ErrorFrame;
    } catch {
      return;
    }
    if (frame.type === "start") {
      this.startFrame = frame;
      this.markStarted.resolve();
    } else if (frame.type === "end") {
      this.finish({
        stdout: this.out + this.decoders.stdout.decode(),
        stderr: this.err + this.decoders.stderr.decode(),
        exitCode: frame.exit_code,
        ...(frame.error ? { error: frame.error } : {}),
        durationMs: Date.now() - this.startedAt,
      });
    } else if (frame.type === "error") {
      const error = errorFromWire({ code: frame.code, message: frame.message, inSandbox: true });
      // Some errors (a resize without a PTY) leave the stream open; the server closes when fatal.
      if (!this.startFrame) this.finish(undefined, error);
      else this.failure ??= error;
    }
  }

  private output(frame: Uint8Array): void {
    const stream = STREAMS[frame[0] ?? 0];
    if (!stream || this.finished) return;
    const data = frame.subarray(1);
    try {
      if (stream === "stdout" || stream === "stderr") {
        const text = this.decoders[stream].decode(data, { stream: true });
        if (stream === "stdout") {
          this.out += text;
          if (text) this.options.onStdout?.(text);
        } else {
          this.err += text;
          if (text) this.options.onStderr?.(text);
        }
      } else {
        this.options.onData?.(data);
      }
    } catch (err) {
      // Thrown on from here it would be the socket's uncaught exception: the process's end.
      this.killAndEnd(err);
      return;
    }
    const chunk: OutputChunk = { stream, data, text: () => new TextDecoder().decode(data) };
    this.backlog?.push(chunk);
    for (const queue of this.iterators) queue.push(chunk);
    this.wake();
  }

  /** Kills the process and ends the handle with `reason` (an abort, a callback that threw). */
  private killAndEnd(reason: unknown): void {
    if (this.finished) return;
    // Before the process has started the server holds the kill for it, and applies it even
    // when the socket closes right after.
    void this.socket
      .send(JSON.stringify({ type: "signal", signal: "SIGKILL" }))
      .catch(() => {})
      .finally(() => this.socket.close());
    this.finish(undefined, reason);
  }

  private closed(code: number, reason: string): void {
    if (this.finished) return;
    const error =
      this.failure ??
      (code >= 4000
        ? errorFromWire({ status: code - 4000, message: reason || undefined, inSandbox: true })
        : new ConnectionError(
            `the exec stream closed (${code}${reason ? ` ${reason}` : ""}) before the command ended`,
            { code: "connection_lost" },
          ));
    this.finish(undefined, error);
  }

  private finish(result: CommandResult | undefined, error?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.options.signal?.removeEventListener("abort", this.onAbort);
    if (result) {
      this.failure = undefined; // a non-fatal error frame earlier does not fail a clean end
      this.settle.resolve(result);
      this.socket.close();
    } else {
      this.failure = error;
      this.settle.reject(error);
      this.markStarted.reject(error);
    }
    // The backlog stays: a short command may end before the caller starts iterating.
    this.wake();
  }

  private wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}

/** Sends SIGKILL to a process over REST; false when it does not exist. */
export async function killProcess(
  client: ApiClient,
  sandboxId: string,
  pid: number,
  opts: RequestOpts,
): Promise<boolean> {
  try {
    await client.json({
      method: "POST",
      path: `/v1/sandboxes/${encodeURIComponent(sandboxId)}/processes/${pid}/signal`,
      json: { signal: "SIGKILL" },
      idempotent: true,
      inSandbox: true,
      ...requestOpts(opts),
    });
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}
