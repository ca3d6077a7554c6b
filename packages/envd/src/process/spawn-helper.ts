import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { accessSync, constants as fsConstants, openSync } from "node:fs";
import { Socket } from "node:net";
import { constants as osConstants } from "node:os";
import { type Readable, Writable } from "node:stream";
import type { Logger } from "pino";
import type { SpawnPlan } from "./spawn-plan.js";

/**
 * What a process started with pipes offers envd, whether Node's spawn or the helper started it:
 * the part of ChildProcess that ManagedProcess uses.
 */
export interface PipeChild {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  once(event: "exit", listener: () => void): unknown;
  once(
    event: "close",
    listener: (code: number | null, signal: NodeJS.Signals | null) => void,
  ): unknown;
}

/**
 * What the helper needs to start one process (see native/spawn-helper.c): a plan whose uid, gid
 * and groups are all set or none (envd's own kept), and whether stdin is a pipe. A `detached`
 * process is meant to outlive its starter (a sandbox, started by the agent): its exit is not
 * reported and never holds the starter's event loop.
 */
export type HelperSpawn = SpawnPlan & { stdin: boolean; detached?: boolean };

/** The helper is gone or never ran: the caller spawns with Node instead. */
export class HelperUnavailable extends Error {}

const RECORD = 24;
const KEEP_ID = 0xffff_ffff;
/** After the helper died, how often to look whether a process it started is still there. */
const orphanCheckMs = 100;

const errnoNames = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, number]) => [number, name]),
);
const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);

/** A process the helper started: its pipes (opened through /proc) and, later, its exit. */
class HelperChild extends EventEmitter implements PipeChild {
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  private openStreams = 2;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private closed = false;

  constructor(
    readonly pid: number,
    stdin: Writable | null,
    stdout: Readable,
    stderr: Readable,
  ) {
    super();
    this.stdin = stdin;
    this.stdout = stdout;
    this.stderr = stderr;
    for (const stream of [stdout, stderr]) stream.once("close", () => this.streamClosed());
  }

  exited(code: number | null, signal: NodeJS.Signals | null): void {
    // A fast process's exit comes in the same read as its start: its owner attaches listeners
    // once the start has resolved its promise, so the exit waits for the next turn.
    setImmediate(() => {
      if (this.exit) return;
      this.exit = { code, signal };
      this.emit("exit", code, signal);
      this.maybeClose();
    });
  }

  private streamClosed(): void {
    this.openStreams--;
    this.maybeClose();
  }

  /** Like ChildProcess: `close` once it exited and its output pipes are closed. */
  private maybeClose(): void {
    if (this.exit && this.openStreams === 0 && !this.closed) {
      this.closed = true;
      this.emit("close", this.exit.code, this.exit.signal);
    }
  }
}

/** A pipe end the helper holds, opened anew through /proc (works for pipes, not sockets). */
function openHelperFd(helperPid: number, fd: number, write: boolean): number {
  const mode = write ? fsConstants.O_WRONLY : fsConstants.O_RDONLY;
  return openSync(`/proc/${helperPid}/fd/${fd}`, mode | fsConstants.O_NONBLOCK);
}

/** stdin of a process that already closed its end: every write fails as a closed pipe does. */
function closedStdin(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    },
  });
}

/**
 * envd's side of `wrenn-spawn` (native/spawn-helper.c): one small process, started with envd,
 * that starts processes with pipes by clone(CLONE_VM|CLONE_VFORK), so no spawn copies envd's
 * address space. Requests go down its stdin, answers and exits come up its stdout.
 */
export class SpawnHelper {
  private readonly pending = new Map<
    number,
    { resolve: (c: HelperChild) => void; reject: (e: Error) => void; req: HelperSpawn }
  >();
  private readonly children = new Map<number, HelperChild>();
  private nextId = 1;
  private buffered = Buffer.alloc(0);
  private alive = true;

  /** The spawn before the next one (see spawn). */
  private previous: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly proc: ChildProcess,
    private readonly log: Pick<Logger, "warn" | "debug">,
  ) {
    proc.stdout!.on("data", (chunk: Buffer) => this.onData(chunk));
    proc.stdin!.on("error", () => {}); // the exit handler below says what happened
    proc.once("exit", (code, signal) => this.onExit(code, signal));
    proc.once("error", (err) => {
      this.log.warn({ err }, "spawn helper failed; processes start with Node's spawn");
      this.onExit(null, null);
    });
  }

  /**
   * Starts the helper at `path`; undefined when there is none (Node's spawn is used then). `log`
   * hears of a helper missing or gone.
   */
  static start(
    path: string | undefined,
    log: Pick<Logger, "warn" | "debug">,
  ): SpawnHelper | undefined {
    if (!path) return undefined;
    try {
      accessSync(path, fsConstants.X_OK);
    } catch {
      log.debug({ path }, "no spawn helper; processes start with Node's spawn");
      return undefined;
    }
    const proc = spawn(path, [], { stdio: ["pipe", "pipe", "inherit"] });
    // The helper must not keep envd running; envd closing its stdin ends it. Its stdout is held
    // only while a start or an exit is awaited (see holdWhileWaiting).
    proc.unref();
    for (const s of [proc.stdin, proc.stdout] as const) (s as unknown as Socket).unref?.();
    return new SpawnHelper(proc, log);
  }

  get available(): boolean {
    return this.alive;
  }

  /** The helper's pid (tests end it to check the fallback). */
  get pid(): number | undefined {
    return this.proc.pid;
  }

  /**
   * Starts a process; rejects with HelperUnavailable (try Node) or an errno error. One spawn at a
   * time, each until its pipes are open: while a child that switches uid shares the helper's
   * memory, the helper is not dumpable and opening its fds through /proc fails with EACCES.
   */
  spawn(req: HelperSpawn): Promise<PipeChild> {
    const start = () =>
      new Promise<PipeChild>((resolve, reject) => {
        if (!this.alive) return reject(new HelperUnavailable("spawn helper is gone"));
        const id = this.nextId++;
        if (this.nextId > 0x7fff_ffff) this.nextId = 1;
        this.pending.set(id, { resolve, reject, req });
        this.holdWhileWaiting();
        this.proc.stdin!.write(encodeSpawn(id, req));
      });
    const started = this.previous.then(start, start);
    this.previous = started.catch(() => undefined);
    return started;
  }

  close(): void {
    this.proc.stdin?.end();
  }

  private onData(chunk: Buffer): void {
    let data = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    let offset = 0;
    for (; offset + RECORD <= data.length; offset += RECORD) {
      const rec = [0, 1, 2, 3, 4, 5].map((i) => data.readInt32LE(offset + i * 4)) as [
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      this.onRecord(rec);
    }
    data = data.subarray(offset);
    this.buffered = data.length ? Buffer.from(data) : Buffer.alloc(0);
  }

  private onRecord([type, a, b, c, d, e]: [number, number, number, number, number, number]): void {
    if (type === 0x58 /* X */) {
      const child = this.children.get(a);
      if (!child) return;
      this.children.delete(a);
      this.holdWhileWaiting();
      // The raw wait status: exit code in bits 8-15, else the signal in bits 0-6.
      const signal = b & 0x7f;
      if (signal === 0) child.exited((b >> 8) & 0xff, null);
      else child.exited(null, signalNames.get(signal) ?? null);
      return;
    }
    const waiter = this.pending.get(a);
    if (!waiter) return;
    this.pending.delete(a);
    this.holdWhileWaiting();
    if (type === 0x45 /* E */) {
      // Worded as Node's spawn words it.
      const code = errnoNames.get(b) ?? `errno ${b}`;
      const message = `spawn ${waiter.req.file} ${code}`;
      waiter.reject(Object.assign(new Error(message), { code, errno: -b }));
      return;
    }
    // 'P': id, pid, stdin, stdout, stderr (the helper's fds, held until our release).
    try {
      waiter.resolve(this.adopt(a, b, c, d, e, waiter.req));
    } catch (err) {
      waiter.reject(err as Error);
    }
  }

  private adopt(
    id: number,
    pid: number,
    inFd: number,
    outFd: number,
    errFd: number,
    req: HelperSpawn,
  ): HelperChild {
    const helperPid = this.proc.pid!;
    try {
      const stdout = new Socket({ fd: openHelperFd(helperPid, outFd, false), writable: false });
      const stderr = new Socket({ fd: openHelperFd(helperPid, errFd, false), writable: false });
      let stdin: Writable | null = null;
      if (req.stdin) {
        try {
          stdin = new Socket({ fd: openHelperFd(helperPid, inFd, true), readable: false });
        } catch (err) {
          // ENXIO: nobody reads the pipe any more, the process closed its stdin (or ended).
          if ((err as NodeJS.ErrnoException).code !== "ENXIO") throw err;
          stdin = closedStdin();
        }
      }
      const child = new HelperChild(pid, stdin, stdout, stderr);
      // The helper reaps a detached process too; its exit record then names no child here, and
      // its pipes, read or written as long as the caller likes, keep nobody's event loop alive.
      if (req.detached) for (const s of [stdout, stderr, stdin]) (s as Socket | null)?.unref();
      else this.children.set(pid, child);
      this.holdWhileWaiting();
      return child;
    } finally {
      this.proc.stdin!.write(encodeRelease(id));
    }
  }

  /**
   * Keeps envd's event loop alive while an answer or an exit is due: at shutdown envd SIGKILLs
   * what it started and awaits the exits, and with the output pipes closed and nothing else
   * left, Node would exit first and leave those processes unreaped.
   */
  private holdWhileWaiting(): void {
    const stdout = this.proc.stdout as unknown as Socket;
    if (this.pending.size + this.children.size > 0) stdout.ref?.();
    else stdout.unref?.();
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.alive) return;
    this.alive = false;
    if (code !== 0)
      this.log.warn({ code, signal }, "spawn helper exited; processes start with Node's spawn");
    for (const { reject } of this.pending.values())
      reject(new HelperUnavailable("spawn helper exited"));
    this.pending.clear();
    // Its orphans were adopted by the sandbox's init, which reaps them: their exit status is
    // lost, so each ends as "exit status -1" once it is gone.
    for (const [pid, child] of this.children) {
      const timer = setInterval(() => {
        try {
          process.kill(pid, 0);
        } catch {
          clearInterval(timer);
          child.exited(-1, null);
        }
      }, orphanCheckMs);
      timer.unref();
    }
    this.children.clear();
  }
}

function encodeSpawn(id: number, req: HelperSpawn): Buffer {
  const groups = req.uid === undefined ? [] : (req.groups ?? []);
  const env = Object.entries(req.env).map(([k, v]) => `${k}=${v}`);
  const strings = [req.file, req.cwd, req.file, ...req.args, ...env];
  const text = Buffer.from(`${strings.join("\0")}\0`);
  const head = Buffer.alloc(4 + 28 + groups.length * 4);
  head.writeUInt32LE(head.length - 4 + text.length, 0);
  head.write("S", 4, "latin1");
  head.writeUInt8(req.stdin ? 1 : 0, 5);
  head.writeUInt32LE(id, 8);
  head.writeUInt32LE(req.uid ?? KEEP_ID, 12);
  head.writeUInt32LE(req.gid ?? KEEP_ID, 16);
  head.writeUInt32LE(groups.length, 20);
  head.writeUInt32LE(1 + req.args.length, 24);
  head.writeUInt32LE(env.length, 28);
  for (const [i, g] of groups.entries()) head.writeUInt32LE(g, 32 + i * 4);
  return Buffer.concat([head, text]);
}

function encodeRelease(id: number): Buffer {
  const frame = Buffer.alloc(12);
  frame.writeUInt32LE(8, 0);
  frame.write("R", 4, "latin1");
  frame.writeUInt32LE(id, 8);
  return frame;
}
