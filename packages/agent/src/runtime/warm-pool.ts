import type { Logger } from "pino";

/** How many ready sandboxes to keep for one template, and with which disk size. */
export interface WarmPoolTarget {
  template: string;
  size: number;
  /** Only creates asking for this disk size can claim one (a disk cannot be resized live). */
  diskSizeMb?: number;
}

export interface WarmPoolOptions<T> {
  targets: readonly WarmPoolTarget[];
  /** Builds one ready sandbox for the target. */
  make: (target: WarmPoolTarget) => Promise<T>;
  /** Removes a sandbox that will never be claimed; returns its cleanup failures. */
  discard: (item: T) => Promise<Error[]>;
  logger: Logger;
  /** Quiet time before a refill starts, left to the first commands of the sandbox just claimed. */
  refillDelayMs?: number;
}

/**
 * Ready sandboxes per template, so a create claims one instead of waiting for a launch and
 * envd's start. Refills run in the background, one build at a time, so they never hold up a
 * request and leave the other core to the sandboxes in use.
 */
export class WarmPool<T> {
  private readonly ready = new Map<string, T[]>();
  private readonly opts: WarmPoolOptions<T>;
  private refilling: Promise<void> | undefined;
  private closed = false;

  constructor(opts: WarmPoolOptions<T>) {
    this.opts = opts;
    for (const target of opts.targets) this.ready.set(target.template, []);
  }

  /** Removes and returns a ready sandbox of `template` that `accept`s, if there is one. */
  take(template: string, accept: (item: T) => boolean): T | undefined {
    const items = this.ready.get(template);
    const index = items?.findIndex(accept) ?? -1;
    if (index < 0) return undefined;
    return items!.splice(index, 1)[0];
  }

  /** Ready sandboxes now held (all templates). */
  get size(): number {
    let n = 0;
    for (const items of this.ready.values()) n += items.length;
    return n;
  }

  /**
   * Starts a background refill unless one runs already (that one sees every deficit). The
   * first build starts `refillDelayMs` later, after the caller's response is sent.
   */
  fill(): void {
    if (this.closed || this.refilling || this.opts.targets.every((t) => t.size <= 0)) return;
    this.refilling = new Promise<void>((resolve) =>
      setTimeout(resolve, this.opts.refillDelayMs ?? 0),
    )
      .then(() => this.refill())
      .finally(() => {
        this.refilling = undefined;
      });
  }

  /** Resolves once the pool holds every target's size (or a target failed to build). */
  async idle(): Promise<void> {
    while (this.refilling) await this.refilling;
  }

  /** Stops refilling and removes every ready sandbox; returns the cleanup failures. */
  async drain(): Promise<Error[]> {
    this.closed = true;
    await this.idle();
    const items = [...this.ready.values()].flatMap((list) => list.splice(0));
    const results = await Promise.all(items.map((item) => this.opts.discard(item)));
    return results.flat();
  }

  private async refill(): Promise<void> {
    // A target whose build fails (e.g. its template does not exist yet) waits for the next fill.
    const failed = new Set<string>();
    for (;;) {
      const target = this.opts.targets.find(
        (t) => !failed.has(t.template) && (this.ready.get(t.template)?.length ?? 0) < t.size,
      );
      if (!target || this.closed) return;
      try {
        const item = await this.opts.make(target);
        if (this.closed) {
          const errors = await this.opts.discard(item);
          if (errors.length > 0) this.opts.logger.warn({ errors }, "warm pool: discard failed");
          return;
        }
        this.ready.get(target.template)!.push(item);
      } catch (err) {
        failed.add(target.template);
        this.opts.logger.warn({ template: target.template, err }, "warm pool: refill failed");
      }
    }
  }
}
