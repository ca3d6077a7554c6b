/** How many ready sandboxes to keep for one template, and with which disk size. */
export interface WarmPoolTarget {
  template: string;
  size: number;
  /** Only creates asking for this disk size can claim one (a disk cannot be resized live). */
  diskSizeMb?: number;
}

/**
 * `WRENN_WARM_POOL=auto`: per template (and per snapshot once used) a pool sized from the recent
 * create rate and bursts, all of them together within a memory budget.
 */
export interface WarmPoolAuto {
  mode: "auto";
  /** `WRENN_WARM_POOL_MEMORY_MB`: most memory the ready sandboxes may hold together. */
  memoryMb: number;
  /** The template creates get when they name none: one stays ready once it exists. */
  defaultTemplate: string;
}

/** Either fixed sizes per template, or sizes that follow demand. */
export type WarmPoolSetting = WarmPoolAuto | readonly WarmPoolTarget[];

/** Creates counted, per template and disk size, over this window. */
export const DEMAND_WINDOW_MS = 60_000;
/** The pool covers the creates expected over this long at the window's rate. */
const COVER_MS = 10_000;
/** Creates begun within this span of each other are one burst. */
export const BURST_SPAN_MS = 1_000;
/** The pool stays as large as the largest burst seen over this long. */
export const BURST_MEMORY_MS = 10 * 60_000;
/** Most ready sandboxes for one template and disk size, whatever the demand. */
export const MAX_PER_TARGET = 32;

interface Entry {
  target: WarmPoolTarget;
  /** When each create of the last window began. */
  at: number[];
  /**
   * Bursts of the last {@link BURST_MEMORY_MS}, each larger than every later one (a sliding
   * maximum): the first is the largest of that time.
   */
  bursts: { size: number; at: number }[];
}

/**
 * Recent creates per template and disk size, and the pool sizes they call for: enough ready
 * sandboxes for the next ten seconds at the last minute's rate, and for a burst as large as the
 * largest of the last ten minutes (at least one while a template was used in the last minute, up
 * to {@link MAX_PER_TARGET}). Callers that create in batches (an evaluation run, a fan-out) find
 * their next batch ready. The default template keeps one whatever the demand; any other decays
 * to none once unused for a minute and burst-free for ten.
 */
export class CreateDemand {
  private readonly creates = new Map<string, Entry>();

  constructor(
    private readonly floor: WarmPoolTarget,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one create (claimed from the pool or not). */
  record(template: string, diskSizeMb: number): void {
    const key = targetKey(template, diskSizeMb);
    let entry = this.creates.get(key);
    if (!entry) {
      entry = { target: { template, diskSizeMb, size: 0 }, at: [], bursts: [] };
      this.creates.set(key, entry);
    }
    const now = this.now();
    entry.at.push(now);
    let burst = 0;
    for (let i = entry.at.length - 1; i >= 0 && entry.at[i]! > now - BURST_SPAN_MS; i--) burst++;
    // A lone create is no burst: a template used once decays with the rate alone.
    if (burst < 2) return;
    while ((entry.bursts.at(-1)?.size ?? Number.POSITIVE_INFINITY) <= burst) entry.bursts.pop();
    entry.bursts.push({ size: burst, at: now });
  }

  /** Stops counting a template (a deleted snapshot): its pool goes to zero at once. */
  forget(template: string): void {
    for (const [key, entry] of this.creates) {
      if (entry.target.template === template) this.creates.delete(key);
    }
  }

  /** The sizes wanted now, most recently used first; the default template's always included. */
  targets(): WarmPoolTarget[] {
    const now = this.now();
    const since = now - DEMAND_WINDOW_MS;
    const out: { target: WarmPoolTarget; last: number }[] = [];
    const floorKey = targetKey(this.floor.template, this.floor.diskSizeMb ?? 0);
    let floorSeen = false;
    for (const [key, entry] of this.creates) {
      entry.at = entry.at.filter((t) => t > since);
      while ((entry.bursts[0]?.at ?? now) <= now - BURST_MEMORY_MS) entry.bursts.shift();
      const burst = entry.bursts[0]?.size ?? 0;
      const isFloor = key === floorKey;
      floorSeen ||= isFloor;
      if (entry.at.length === 0 && burst === 0 && !isFloor) {
        this.creates.delete(key);
        continue;
      }
      const rate = Math.ceil((entry.at.length * COVER_MS) / DEMAND_WINDOW_MS);
      const size = Math.min(MAX_PER_TARGET, Math.max(rate, burst, 1));
      out.push({
        target: { ...entry.target, size },
        last: entry.at.at(-1) ?? entry.bursts.at(-1)?.at ?? 0,
      });
    }
    if (!floorSeen) out.push({ target: { ...this.floor, size: 1 }, last: 0 });
    return out.sort((a, b) => b.last - a.last).map((o) => o.target);
  }
}

/** One pool per template and disk size. */
export function targetKey(template: string, diskSizeMb: number): string {
  return `${template}/${diskSizeMb}`;
}
