import type { ExitInfo } from "./exit-status.js";

/** Small queued chunks (PTY reads are 4 KiB) are merged into data events of up to this size; large ones go as they are. */
const maxMessageBytes = 64 * 1024;

export type OutputKind = "stdout" | "stderr" | "pty";

export interface OutputChunk {
  kind: OutputKind;
  data: Uint8Array;
}

/** What a stream waits for next: output, the end, a quiet interval, or its caller going away. */
export type NextItem =
  | { type: "data"; chunk: OutputChunk }
  | { type: "end"; exit: ExitInfo }
  | { type: "idle" }
  | { type: "aborted" };

/**
 * One attached stream's queue of output. The process pushes, the stream's async generator pulls.
 * The queue is bounded by the process's flow control: the process pauses its source once any
 * subscriber holds `highWater` bytes, and `onDrained` tells it when this one is back under
 * `lowWater`.
 */
export class Subscriber {
  private readonly queue: (OutputChunk | undefined)[] = [];
  private head = 0;
  private queuedBytes = 0;
  private exit: ExitInfo | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly lowWater: number,
    private readonly onDrained: () => void,
  ) {}

  get bytes(): number {
    return this.queuedBytes;
  }

  push(chunk: OutputChunk): void {
    this.queue.push(chunk);
    this.queuedBytes += chunk.data.byteLength;
    this.notify();
  }

  finish(exit: ExitInfo): void {
    this.exit = exit;
    this.notify();
  }

  /** The next item; `idle` after `idleMs` without one, `aborted` once `signal` fires. */
  async next(idleMs: number, signal: AbortSignal): Promise<NextItem> {
    for (;;) {
      if (signal.aborted) return { type: "aborted" };
      const chunk = this.shift();
      if (chunk) return { type: "data", chunk };
      if (this.exit) return { type: "end", exit: this.exit };
      const woke = await this.wait(idleMs, signal);
      if (!woke) return signal.aborted ? { type: "aborted" } : { type: "idle" };
    }
  }

  /** The oldest output, merged with the chunks of the same kind after it (fewer, larger messages). */
  private shift(): OutputChunk | undefined {
    if (this.head >= this.queue.length) return undefined;
    const first = this.take();
    const parts = [first.data];
    let size = first.data.byteLength;
    for (
      let next = this.queue[this.head];
      next?.kind === first.kind;
      next = this.queue[this.head]
    ) {
      if (size + next.data.byteLength > maxMessageBytes) break;
      parts.push(this.take().data);
      size += next.data.byteLength;
    }
    // Drop consumed slots now and then, so a queue that never empties does not grow forever.
    if (this.head === this.queue.length || this.head >= 1024) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    const chunk =
      parts.length === 1 ? first : { kind: first.kind, data: Buffer.concat(parts, size) };
    const before = this.queuedBytes;
    this.queuedBytes -= chunk.data.byteLength;
    if (before > this.lowWater && this.queuedBytes <= this.lowWater) this.onDrained();
    return chunk;
  }

  private take(): OutputChunk {
    const chunk = this.queue[this.head] as OutputChunk;
    this.queue[this.head++] = undefined;
    return chunk;
  }

  /** Resolves true when woken by new items, false on timeout or abort. */
  private wait(idleMs: number, signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (woke: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.wake = undefined;
        resolve(woke);
      };
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), idleMs);
      signal.addEventListener("abort", onAbort, { once: true });
      this.wake = () => done(true);
    });
  }

  private notify(): void {
    this.wake?.();
  }
}
