import type { Logger } from "pino";
import { AgentError } from "../errors.js";
import type { Runtime } from "../runtime/index.js";

export interface ReaperOptions {
  runtime: Runtime;
  logger: Logger;
  /** How often idle sandboxes are looked for; 2 s by default. */
  intervalMs?: number;
}

/**
 * Pauses sandboxes idle longer than their timeout_sec (0 = never), destroying them if the pause
 * fails. Activity (pings, proxied envd traffic, resume) is kept in memory: after an agent
 * restart every adopted sandbox counts as active from that moment.
 */
export class Reaper {
  private readonly runtime: Runtime;
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private readonly lastActive = new Map<string, number>();
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Proxied requests under way per sandbox: a sandbox in use is never idle. */
  private readonly inUse = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: ReaperOptions) {
    this.runtime = opts.runtime;
    this.logger = opts.logger.child({ component: "reaper" });
    this.intervalMs = opts.intervalMs ?? 2_000;
  }

  /** Marks the sandbox active now; returns that moment. */
  touch(id: string): Date {
    const now = Date.now();
    this.lastActive.set(id, now);
    return new Date(now);
  }

  /** Marks the sandbox in use until the returned function is called (then active at that moment). */
  hold(id: string): () => void {
    this.touch(id);
    this.inUse.set(id, (this.inUse.get(id) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inUse.get(id) ?? 1) - 1;
      if (left > 0) this.inUse.set(id, left);
      else this.inUse.delete(id);
      this.touch(id);
    };
  }

  lastActiveAt(id: string): Date {
    let at = this.lastActive.get(id);
    if (at === undefined) {
      at = Date.now();
      this.lastActive.set(id, at);
    }
    return new Date(at);
  }

  forget(id: string): void {
    this.lastActive.delete(id);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops looking; pauses already under way are awaited, never abandoned halfway. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.allSettled(this.inFlight.values());
  }

  /** One pass (also what the timer runs). */
  sweep(): void {
    const now = Date.now();
    for (const sandbox of this.runtime.list()) {
      if (sandbox.state !== "running" || sandbox.timeoutSec <= 0) continue;
      if (this.inFlight.has(sandbox.id) || this.inUse.has(sandbox.id)) continue;
      const idleMs = now - this.lastActiveAt(sandbox.id).getTime();
      if (idleMs <= sandbox.timeoutSec * 1000) continue;
      // Not tied to any request or shutdown signal: once begun, a pause runs to its end.
      const work = this.pauseOrDestroy(sandbox.id, idleMs).finally(() =>
        this.inFlight.delete(sandbox.id),
      );
      this.inFlight.set(sandbox.id, work);
    }
  }

  private async pauseOrDestroy(id: string, idleMs: number): Promise<void> {
    try {
      await this.runtime.pause(id, { auto: true });
      this.logger.info({ sandboxId: id, idleMs }, "sandbox auto-paused");
    } catch (err) {
      // Paused, destroyed or busy meanwhile: nothing went wrong with the sandbox itself.
      if (
        err instanceof AgentError &&
        (err.code === "not_found" || err.code === "failed_precondition")
      ) {
        return;
      }
      this.logger.warn({ sandboxId: id, err }, "auto-pause failed, destroying");
      try {
        await this.runtime.destroy(id);
        this.forget(id);
      } catch (destroyErr) {
        this.logger.error({ sandboxId: id, err: destroyErr }, "destroy after failed pause failed");
      }
    }
  }
}
