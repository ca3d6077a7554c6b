import { TimeoutError } from "../errors/index.js";

/** The longest a timer can wait: Node fires a longer one (Infinity too) at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A `timeoutMs` too long for a timer (such as Infinity) taken as what it means: 0, no limit. */
export function limitOf(timeoutMs: number): number {
  return timeoutMs > MAX_TIMER_MS ? 0 : timeoutMs;
}

/** Per-call options every SDK method accepts. */
export interface RequestOpts {
  /** Aborts the call (and any stream it opened); it rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Fails the call with a {@link TimeoutError} after this many ms (0 or Infinity = no limit). */
  timeoutMs?: number;
}

/**
 * One signal for a call: the caller's signal and the call's own timeout. The timer can be
 * cleared once a stream's headers arrive, so a long download is bounded only by the caller.
 */
export class Deadline {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly caller: AbortSignal | undefined;
  private readonly onCallerAbort = () => this.controller.abort(this.caller?.reason);

  constructor(opts: RequestOpts, what: string) {
    this.signal = this.controller.signal;
    const { signal, timeoutMs } = opts;
    this.caller = signal;
    if (signal?.aborted) this.controller.abort(signal.reason);
    else signal?.addEventListener("abort", this.onCallerAbort, { once: true });
    if (timeoutMs && limitOf(timeoutMs) > 0 && !this.signal.aborted) {
      this.timer = setTimeout(
        () =>
          this.controller.abort(
            new TimeoutError(`${what} timed out after ${timeoutMs} ms`, { code: "timeout" }),
          ),
        timeoutMs,
      );
      // A pending timeout alone must not keep a Node process alive.
      (this.timer as { unref?: () => void }).unref?.();
    }
  }

  /** Stops the timer; the caller's signal still applies. */
  clear(): void {
    clearTimeout(this.timer);
  }

  /**
   * Ends the call's hold on the caller's signal: one signal reused for many calls (an app's
   * shutdown signal) would otherwise keep a listener, and this call's state, per call forever.
   */
  release(): void {
    this.clear();
    this.caller?.removeEventListener("abort", this.onCallerAbort);
  }
}

/** Just the per-call options, so a caller's other fields do not leak into a request. */
export function requestOpts(opts: RequestOpts): RequestOpts {
  return {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  };
}
