import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import {
  CreateDemand,
  targetKey,
  type WarmPoolAuto,
  type WarmPoolSetting,
  type WarmPoolTarget,
} from "./demand.js";

/** A target whose disk size is known. */
export type SizedTarget = WarmPoolTarget & { diskSizeMb: number };

export interface WarmPoolOptions<T> {
  setting: WarmPoolSetting;
  /** The disk size of a fixed target that names none, and of the default template's pool. */
  defaultDiskSizeMb: number;
  /** Builds one ready sandbox for the target. */
  make: (target: SizedTarget) => Promise<T>;
  /** Removes a sandbox that will never be claimed; returns its cleanup failures. */
  discard: (item: T) => Promise<Error[]>;
  /** Bytes of memory a ready sandbox holds (its cgroup's), for the auto mode's budget. */
  memoryOf?: (item: T) => Promise<number>;
  logger: Logger;
  /** Quiet time after the last create before a refill build starts. */
  refillDelayMs?: number;
  /** Auto mode: how often sizes are looked at again without a create (decay, retries). */
  tickMs?: number;
  now?: () => number;
}

interface Ready<T> {
  item: T;
  bytes: number;
}

const MiB = 1024 * 1024;
/** What a ready sandbox is assumed to hold until one has been measured. */
const FIRST_ESTIMATE = 64 * MiB;
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 60_000;

export function isAutoPool(setting: WarmPoolSetting | undefined): setting is WarmPoolAuto {
  return setting !== undefined && "mode" in setting && setting.mode === "auto";
}

/**
 * Ready sandboxes per template and disk size, so a create claims one instead of waiting for a
 * launch and envd's start. Sizes are fixed, or follow demand (rate, bursts) within a memory budget
 * (`auto`). Refills run in the background, one build at a time, and only once no create has
 * been under way for `refillDelayMs`: a refill never competes with a request for the CPU.
 */
export class WarmPool<T> {
  private readonly ready = new Map<string, Ready<T>[]>();
  private readonly opts: WarmPoolOptions<T>;
  private readonly demand: CreateDemand | undefined;
  private readonly fixed: SizedTarget[] = [];
  private readonly budgetBytes: number;
  private ticker: NodeJS.Timeout | undefined;
  /** A fixed pool's wake-up for the next retry after a failed build (it has no ticker). */
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly retryAt = new Map<string, { at: number; backoffMs: number }>();
  private refilling: Promise<void> | undefined;
  /** The build under way, until what it made is kept or discarded. */
  private building: Promise<void> | undefined;
  private closed = false;
  /** Set by the first fill (the runtime's start). */
  private started = false;
  private creating = 0;
  private lastCreateEnd = 0;
  private quietWaiters: (() => void)[] = [];
  private estimate = FIRST_ESTIMATE;
  private overBudget = false;

  constructor(opts: WarmPoolOptions<T>) {
    this.opts = opts;
    const { setting } = opts;
    if (isAutoPool(setting)) {
      this.demand = new CreateDemand(
        { template: setting.defaultTemplate, size: 1, diskSizeMb: opts.defaultDiskSizeMb },
        opts.now,
      );
      this.budgetBytes = setting.memoryMb * MiB;
    } else {
      this.budgetBytes = Number.POSITIVE_INFINITY;
      for (const t of setting) {
        this.fixed.push({ ...t, diskSizeMb: t.diskSizeMb ?? opts.defaultDiskSizeMb });
      }
    }
  }

  /** The sizes wanted now. */
  targets(): SizedTarget[] {
    if (!this.demand) return this.fixed;
    return this.demand
      .targets()
      .map((t) => ({ ...t, diskSizeMb: t.diskSizeMb ?? this.opts.defaultDiskSizeMb }));
  }

  /**
   * Marks a create under way until the returned function is called: refill builds wait until
   * none is. `record` counts it toward its template's demand once its template is known.
   */
  begin(): { record(template: string, diskSizeMb: number): void; end(): void } {
    this.creating++;
    let ended = false;
    return {
      record: (template, diskSizeMb) => this.demand?.record(template, diskSizeMb),
      end: () => {
        if (ended) return;
        ended = true;
        this.creating--;
        this.lastCreateEnd = this.now();
        if (this.creating === 0) for (const wake of this.quietWaiters.splice(0)) wake();
      },
    };
  }

  /** Removes and returns a ready sandbox of `template` with this disk size, if there is one. */
  take(template: string, diskSizeMb: number): T | undefined {
    return this.ready.get(targetKey(template, diskSizeMb))?.shift()?.item;
  }

  /** Ready sandboxes now held (all templates). */
  get size(): number {
    let n = 0;
    for (const items of this.ready.values()) n += items.length;
    return n;
  }

  /** Memory the ready sandboxes hold, as measured when each became ready. */
  get heldBytes(): number {
    let n = 0;
    for (const items of this.ready.values()) for (const r of items) n += r.bytes;
    return n;
  }

  /** Starts a background refill unless one runs already (that one sees every deficit). */
  fill(): void {
    this.started = true;
    // Asked for (a create, a start): what failed before is tried again now.
    this.retryAt.clear();
    // Auto sizes change with time alone (decay, a template built meanwhile): looked at again
    // every few seconds from the first fill on (a runtime never started never builds).
    if (this.demand && !this.ticker && !this.closed) {
      this.ticker = setInterval(() => this.start(), this.opts.tickMs ?? 2_000);
      this.ticker.unref();
    }
    this.start();
  }

  /**
   * A template became available: fill as {@link fill} does, once the runtime has filled once (its
   * adoption pass, which removes unclaimed pooled sandboxes, must not race a build).
   */
  nudge(): void {
    if (this.started) this.fill();
  }

  /** Resolves once no refill is under way. */
  async idle(): Promise<void> {
    while (this.refilling) await this.refilling;
  }

  /**
   * Stops keeping `template` (a snapshot being deleted) and removes the ready sandboxes for
   * which `uses` holds, including one being built now.
   */
  async forget(template: string, uses: (item: T) => boolean): Promise<Error[]> {
    this.demand?.forget(template);
    const fixedIndex = this.fixed.findIndex((t) => t.template === template);
    if (fixedIndex >= 0) this.fixed.splice(fixedIndex, 1);
    // A build under way sees the target gone when it ends, and discards what it made.
    await this.building;
    const gone: T[] = [];
    for (const items of this.ready.values()) {
      for (let i = items.length - 1; i >= 0; i--) {
        if (uses(items[i]!.item)) gone.push(items.splice(i, 1)[0]!.item);
      }
    }
    return (await Promise.all(gone.map((item) => this.opts.discard(item)))).flat();
  }

  /** Stops refilling and removes every ready sandbox; returns the cleanup failures. */
  async drain(): Promise<Error[]> {
    this.closed = true;
    if (this.ticker) clearInterval(this.ticker);
    clearTimeout(this.retryTimer);
    for (const wake of this.quietWaiters.splice(0)) wake();
    await this.idle();
    const items = [...this.ready.values()].flatMap((list) => list.splice(0));
    const results = await Promise.all(items.map((r) => this.opts.discard(r.item)));
    return results.flat();
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private start(): void {
    if (this.closed || this.refilling) return;
    if (!this.demand && this.fixed.every((t) => t.size <= 0)) return;
    this.refilling = this.refill().finally(() => {
      this.refilling = undefined;
    });
  }

  /**
   * Resolves once no create has been under way for `refillDelayMs` (or the pool is closed):
   * what background work waits for (this pool's refills, the disk pool's), so that it does not
   * take the CPU from a create, nor from the first commands sent to the sandbox just made.
   */
  async quiet(): Promise<void> {
    const delay = this.opts.refillDelayMs ?? 0;
    for (;;) {
      if (this.closed) return;
      if (this.creating > 0) {
        await new Promise<void>((resolve) => this.quietWaiters.push(resolve));
        continue;
      }
      const left = this.lastCreateEnd + delay - this.now();
      if (left <= 0) return;
      await sleep(left);
    }
  }

  private async refill(): Promise<void> {
    for (;;) {
      await this.quiet();
      if (this.closed) return;
      const targets = this.targets();
      await this.trim(targets);
      const now = this.now();
      let target: SizedTarget | undefined;
      let deficit = 0;
      let nextRetry = Number.POSITIVE_INFINITY;
      for (const t of targets) {
        const key = targetKey(t.template, t.diskSizeMb);
        const missing = t.size - (this.ready.get(key)?.length ?? 0);
        const retryAt = this.retryAt.get(key)?.at ?? 0;
        if (retryAt > now) {
          if (missing > 0) nextRetry = Math.min(nextRetry, retryAt);
          continue;
        }
        if (missing > deficit) [target, deficit] = [t, missing];
      }
      // Waiting out a failed build's backoff: the auto mode's tick comes back; a fixed pool has
      // no tick, so a timer does (armed here rather than at the failure: a timer that fires a
      // hair before the clock says the backoff is over finds the target still waiting, and
      // arms the next one instead of leaving the pool empty until a create).
      if (!target && !this.demand && nextRetry < Number.POSITIVE_INFINITY && !this.closed)
        this.armRetry(nextRetry - now);
      if (!target || this.closed) return;
      if (this.heldBytes + this.estimate > this.budgetBytes) {
        if (!this.overBudget) {
          this.opts.logger.info(
            { heldBytes: this.heldBytes, budgetBytes: this.budgetBytes },
            "warm pool: memory budget reached, not growing",
          );
        }
        this.overBudget = true;
        return;
      }
      this.overBudget = false;
      const building = this.build(target);
      this.building = building;
      await building;
      this.building = undefined;
    }
  }

  private async build(target: SizedTarget): Promise<void> {
    const key = targetKey(target.template, target.diskSizeMb);
    try {
      const item = await this.opts.make(target);
      const ready = { item, bytes: (await this.opts.memoryOf?.(item).catch(() => 0)) ?? 0 };
      this.retryAt.delete(key);
      if (ready.bytes > 0) this.estimate = ready.bytes;
      const wanted = this.targets().some(
        (t) => t.template === target.template && t.diskSizeMb === target.diskSizeMb,
      );
      if (this.closed || !wanted) {
        const errors = await this.opts.discard(ready.item);
        if (errors.length > 0) this.opts.logger.warn({ errors }, "warm pool: discard failed");
        return;
      }
      const items = this.ready.get(key) ?? [];
      this.ready.set(key, items);
      items.push(ready);
    } catch (err) {
      // Retried by the next create, or after a growing pause (refill() sees to it), so one
      // failed build does not leave the pool empty.
      const backoffMs = Math.min(
        MAX_BACKOFF_MS,
        (this.retryAt.get(key)?.backoffMs ?? FIRST_BACKOFF_MS / 2) * 2,
      );
      this.retryAt.set(key, { at: this.now() + backoffMs, backoffMs });
      // A template not built yet (the default one while it is being prepared) is no news.
      const level = (err as { code?: string }).code === "not_found" ? "debug" : "warn";
      this.opts.logger[level]({ template: target.template, err }, "warm pool: refill failed");
    }
  }

  private armRetry(delayMs: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = undefined;
        this.start();
      },
      Math.max(delayMs, 1),
    ).unref();
  }

  /** Removes ready sandboxes past their target's size (demand that went away), oldest first. */
  private async trim(targets: SizedTarget[]): Promise<void> {
    const sizes = new Map(targets.map((t) => [targetKey(t.template, t.diskSizeMb), t.size]));
    for (const [key, items] of this.ready) {
      const extra = items.length - (sizes.get(key) ?? 0);
      if (extra <= 0) continue;
      for (const { item } of items.splice(0, extra)) {
        const errors = await this.opts.discard(item);
        if (errors.length > 0) this.opts.logger.warn({ errors }, "warm pool: discard failed");
      }
    }
  }
}
