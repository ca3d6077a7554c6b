import { spawn as spawnChild } from "node:child_process";
import { closeSync, constants as fsConstants, openSync } from "node:fs";
import type { Readable } from "node:stream";
import type * as NodePty from "node-pty";
import { EnvdError } from "../errors.js";
import { logger } from "../logger.js";
import { type ExitInfo, exitInfo, spawnFailure } from "./exit-status.js";
import { firstForOomKiller } from "./oom-score.js";
import { ptyPendingInput } from "./pty-input.js";
import { HelperUnavailable, type PipeChild, type SpawnHelper } from "./spawn-helper.js";
import type { CommandSpec, PlanResult, SpawnPlan } from "./spawn-plan.js";
import { ptyTerm } from "./spawn-plan.js";
import { type OutputChunk, Subscriber } from "./subscriber.js";

/** A subscriber holding this many bytes pauses the process's output until it drains. */
const highWater = 512 * 1024;
/** …to this many. */
const lowWater = 128 * 1024;
/** Input buffered towards a child that does not read its stdin or terminal, beyond which SendInput fails. */
const maxPendingInput = 8 * 1024 * 1024;
/** After the process exits, how often to check whether its pipes went quiet (a grandchild may hold them open). */
const drainCheckMs = 250;
/**
 * …and how long (not counting time paused for a slow reader) a grandchild that goes on writing
 * may keep the process from ending: its parent is done, as E2B's envd would report at once.
 */
const maxDrainMs = 2000;
/** While a PTY is paused, how often to check whether its child exited (node-pty's grace is 200 ms). */
const ptyExitCheckMs = 50;

/** node-pty, loaded by the first terminal: most sandboxes never open one, and it slows envd's start. */
let nodePty: typeof NodePty | undefined;

/** Loads node-pty if it is not yet: awaited before a process with a terminal is spawned. */
export async function loadPty(): Promise<void> {
  nodePty ??= await import("node-pty");
}

export interface PtySize {
  cols: number;
  rows: number;
}

export interface StartOptions {
  spec: CommandSpec;
  tag: string | undefined;
  pty: PtySize | undefined;
  stdin: boolean;
}

/**
 * A process envd started, with pipes or a PTY. Output goes to every attached Subscriber (Start
 * and Connect streams). Flow control: output is read only while every subscriber holds less than
 * `highWater` bytes, so the slowest attached stream sets the pace (like a pipe would) and memory
 * stays bounded; with nobody attached, output is read and dropped so a background process never
 * blocks on a full pipe.
 */
export class ManagedProcess {
  readonly tag: string | undefined;
  readonly spec: CommandSpec;
  readonly isPty: boolean;
  /** Resolves once the process has ended and all its output was delivered. */
  readonly done: Promise<ExitInfo>;

  private readonly subscribers = new Set<Subscriber>();
  private readonly sources: Readable[] = [];
  private child: PipeChild | undefined;
  private term: NodePty.IPty | undefined;
  private paused = false;
  private result: ExitInfo | undefined;
  private resolveDone!: (exit: ExitInfo) => void;
  private drainTimer: NodeJS.Timeout | undefined;
  private readSinceCheck = false;
  private ptyExitTimer: NodeJS.Timeout | undefined;
  private ptyExited = false;
  private ptySlaveFd: number | undefined;
  /** 0 until spawned, and for a process that could not be started. */
  private processId = 0;

  private constructor(options: StartOptions, cwd: string) {
    this.spec = { ...options.spec, cwd };
    this.tag = options.tag;
    this.isPty = options.pty !== undefined;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  get pid(): number {
    return this.processId;
  }

  /** A process that could not be started: pid 0, already ended with `error`. */
  static failed(options: StartOptions, error: string, errno?: string): ManagedProcess {
    const proc = new ManagedProcess(options, options.spec.cwd ?? "");
    proc.finish(spawnFailure(error, errno));
    return proc;
  }

  /** Spawns the process. Synchronous, so a subscriber attached right after sees all its output. */
  static spawn(options: StartOptions, plan: SpawnPlan): ManagedProcess {
    const proc = new ManagedProcess(options, plan.cwd);
    try {
      firstForOomKiller(() => {
        if (options.pty) proc.spawnPty(plan, options.pty);
        else proc.spawnPipes(plan, options.stdin);
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      proc.finish(spawnFailure(`fork/exec ${options.spec.cmd}: ${e.message}`, e.code));
    }
    return proc;
  }

  /**
   * Spawns a process with pipes through envd's spawn helper, which starts it without forking
   * envd. When the helper is gone, `nodePlan` (a plan for Node's spawn) is spawned as spawn() does.
   */
  static async spawnWithHelper(
    options: StartOptions,
    plan: SpawnPlan,
    helper: SpawnHelper,
    nodePlan: () => PlanResult,
  ): Promise<ManagedProcess> {
    const proc = new ManagedProcess(options, plan.cwd);
    try {
      proc.attachPipes(await helper.spawn({ ...plan, stdin: options.stdin }));
    } catch (err) {
      if (err instanceof HelperUnavailable) {
        const planned = nodePlan();
        return planned.ok
          ? ManagedProcess.spawn(options, planned.plan)
          : ManagedProcess.failed(options, planned.error, "ENOENT");
      }
      const e = err as NodeJS.ErrnoException;
      proc.finish(spawnFailure(`fork/exec ${options.spec.cmd}: ${e.message}`, e.code));
    }
    return proc;
  }

  get ended(): boolean {
    return this.result !== undefined;
  }

  private spawnPipes(plan: SpawnPlan, stdin: boolean): void {
    const child = spawnChild(plan.file, plan.args, {
      cwd: plan.cwd,
      env: plan.env,
      uid: plan.uid,
      gid: plan.gid,
      // Its own process group, so envd's shutdown can end what it started too.
      detached: true,
      stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"],
    });
    child.on("error", (err: NodeJS.ErrnoException) => {
      // Spawn failures arrive here (no pid); later ones (kill on a dead pid) are harmless.
      if (child.pid === undefined)
        this.finish(spawnFailure(`fork/exec ${this.spec.cmd}: ${err.message}`, err.code));
    });
    this.attachPipes(child);
  }

  private attachPipes(child: PipeChild): void {
    this.child = child;
    this.processId = child.pid ?? 0;
    child.stdin?.on("error", (err) => logger.debug({ err, pid: this.pid }, "stdin write failed"));
    for (const [kind, stream] of [
      ["stdout", child.stdout],
      ["stderr", child.stderr],
    ] as const) {
      if (!stream) continue;
      this.sources.push(stream);
      stream.on("data", (data: Buffer) => this.deliver({ kind, data }));
      stream.on("error", (err) => logger.debug({ err, pid: this.pid }, `${kind} read failed`));
    }
    child.once("exit", () => this.watchDrain());
    child.once("close", (code, signal) => this.finish(exitInfo(code, signal)));
  }

  private spawnPty(plan: SpawnPlan, size: PtySize): void {
    if (!nodePty) throw new Error("node-pty is not loaded (loadPty first)");
    const term = nodePty.spawn(plan.file, plan.args, {
      name: ptyTerm,
      cols: size.cols,
      rows: size.rows,
      cwd: plan.cwd,
      env: plan.env,
      uid: plan.uid,
      gid: plan.gid,
      encoding: null,
    });
    this.term = term;
    this.processId = term.pid;
    this.holdPtySlave(term);
    term.onData((data: string | Buffer) => {
      this.deliver({ kind: "pty", data: typeof data === "string" ? Buffer.from(data) : data });
    });
    term.onExit(({ exitCode, signal }) => this.finish(exitInfo(exitCode, signal ?? null)));
  }

  /**
   * libuv takes the hang-up a PTY master reports once the child closes its side as end of file,
   * dropping output the kernel still holds (node-pty loses the tail of fast writers). envd keeps
   * its own descriptor of the terminal's slave side until the process has ended, so there is no
   * hang-up and everything is read before node-pty closes the terminal.
   */
  private holdPtySlave(term: NodePty.IPty): void {
    const ptsName = (term as { ptsName?: string }).ptsName;
    if (!ptsName) return;
    try {
      this.ptySlaveFd = openSync(ptsName, fsConstants.O_RDWR | fsConstants.O_NOCTTY);
    } catch (err) {
      logger.debug({ err, pid: this.pid }, "could not hold the PTY's slave side open");
    }
  }

  /** Attaches a stream; it sees output from now on, and the end. */
  subscribe(): Subscriber {
    const sub = new Subscriber(lowWater, () => this.maybeResume());
    if (this.result) sub.finish(this.result);
    else this.subscribers.add(sub);
    return sub;
  }

  unsubscribe(sub: Subscriber): void {
    if (this.subscribers.delete(sub)) this.maybeResume();
  }

  private deliver(chunk: OutputChunk): void {
    this.readSinceCheck = true;
    let full = false;
    for (const sub of this.subscribers) {
      sub.push(chunk);
      if (sub.bytes >= highWater) full = true;
    }
    if (full) this.setPaused(true);
  }

  private maybeResume(): void {
    if (!this.paused) return;
    for (const sub of this.subscribers) if (sub.bytes > lowWater) return;
    this.setPaused(false);
  }

  private setPaused(paused: boolean): void {
    if (this.paused === paused || this.result || (paused && this.ptyExited)) return;
    this.paused = paused;
    if (this.term) {
      if (paused) this.term.pause();
      else this.term.resume();
      this.watchPausedPty(paused);
    }
    for (const stream of this.sources) {
      if (paused) stream.pause();
      else stream.resume();
    }
  }

  /**
   * node-pty destroys the terminal 200 ms after the child exits, dropping whatever it has not read
   * yet. While paused, watch for the exit and then read the rest regardless (the kernel holds at
   * most a few tens of KiB of terminal output, so this stays bounded).
   */
  private watchPausedPty(paused: boolean): void {
    clearInterval(this.ptyExitTimer);
    if (!paused) return;
    this.ptyExitTimer = setInterval(() => {
      try {
        process.kill(this.pid, 0);
      } catch {
        this.ptyExited = true;
        this.setPaused(false);
      }
    }, ptyExitCheckMs);
    this.ptyExitTimer.unref();
  }

  /**
   * The process exited but its pipes may stay open (a background grandchild inherited them). Once
   * they are neither paused for a slow reader nor producing, or after `maxDrainMs` of reading,
   * stop waiting for them.
   */
  private watchDrain(): void {
    this.readSinceCheck = true;
    let drainingMs = 0;
    this.drainTimer = setInterval(() => {
      if (this.paused) return;
      drainingMs += drainCheckMs;
      if (this.readSinceCheck && drainingMs < maxDrainMs) {
        this.readSinceCheck = false;
        return;
      }
      for (const stream of this.sources) stream.destroy();
    }, drainCheckMs);
    this.drainTimer.unref();
  }

  private finish(exit: ExitInfo): void {
    if (this.result) return;
    this.result = exit;
    clearInterval(this.drainTimer);
    clearInterval(this.ptyExitTimer);
    if (this.ptySlaveFd !== undefined) closeSync(this.ptySlaveFd);
    this.child?.stdin?.destroy();
    for (const sub of this.subscribers) sub.finish(exit);
    this.subscribers.clear();
    this.resolveDone(exit);
  }

  /** Writes to stdin (pipes) or the terminal (PTY); resolves once handed to the OS. */
  async write(kind: "stdin" | "pty", data: Uint8Array): Promise<void> {
    if (this.result) throw new EnvdError("not_found", `process ${this.pid} has ended`);
    if (kind === "pty") {
      if (!this.term)
        throw new EnvdError("failed_precondition", "process has no PTY; send input as stdin");
      if (ptyPendingInput(this.term) > maxPendingInput) {
        throw new EnvdError(
          "resource_exhausted",
          "the process is not reading its terminal; too much input is pending",
        );
      }
      this.term.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      return;
    }
    if (this.term)
      throw new EnvdError("failed_precondition", "process has a PTY; send input as pty");
    const stdin = this.child?.stdin;
    if (!stdin)
      throw new EnvdError(
        "failed_precondition",
        "stdin was not enabled for this process (start it with stdin: true)",
      );
    if (stdin.writableEnded || stdin.destroyed)
      throw new EnvdError("failed_precondition", "stdin is closed");
    if (stdin.writableLength > maxPendingInput) {
      throw new EnvdError(
        "resource_exhausted",
        "the process is not reading its stdin; too much input is pending",
      );
    }
    await new Promise<void>((resolve, reject) => {
      stdin.write(data, (err) => {
        if (!err) resolve();
        else if ((err as NodeJS.ErrnoException).code === "EPIPE")
          reject(new EnvdError("failed_precondition", "the process closed its stdin"));
        else reject(EnvdError.from(err, "write to stdin"));
      });
    });
  }

  closeStdin(): void {
    if (this.result) throw new EnvdError("not_found", `process ${this.pid} has ended`);
    if (this.term) {
      throw new EnvdError(
        "failed_precondition",
        "a PTY has no separate stdin; send Ctrl-D (\\x04) as pty input instead",
      );
    }
    const stdin = this.child?.stdin;
    if (!stdin)
      throw new EnvdError(
        "failed_precondition",
        "stdin was not enabled for this process (start it with stdin: true)",
      );
    stdin.end();
  }

  resize(size: PtySize): void {
    if (!this.term) throw new EnvdError("failed_precondition", "process has no PTY to resize");
    if (this.result) throw new EnvdError("not_found", `process ${this.pid} has ended`);
    this.term.resize(size.cols, size.rows);
  }

  /** Signals the process (or with `group`, its whole process group). */
  kill(signal: NodeJS.Signals, group = false): void {
    if (this.result || this.pid === 0) return;
    try {
      process.kill(group ? -this.pid : this.pid, signal);
    } catch (err) {
      if (group) this.kill(signal);
      else if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw EnvdError.from(err, "signal");
    }
  }
}
