import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../logger/index.js";
import { BURST_MEMORY_MS, CreateDemand, DEMAND_WINDOW_MS, MAX_PER_TARGET } from "./demand.js";
import { type SizedTarget, WarmPool } from "./warm-pool.js";

const MiB = 1024 * 1024;

/** A clock the test moves by hand. */
function manualClock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("CreateDemand", () => {
  const floor = { template: "base", size: 1, diskSizeMb: 1024 };

  it("keeps one of the default template before any create", () => {
    expect(new CreateDemand(floor).targets()).toEqual([floor]);
  });

  it("sizes each template and disk size from the last minute's creates, within the cap", () => {
    const clock = manualClock();
    const demand = new CreateDemand(floor, clock.now);
    demand.record("snap1", 64);
    for (let i = 0; i < 30; i++) {
      demand.record("base", 1024);
      demand.record("busy", 128);
      clock.advance(DEMAND_WINDOW_MS / 30 - 1);
    }
    for (let i = 0; i < 200; i++) demand.record("busy", 128);
    const sizes = Object.fromEntries(
      demand.targets().map((t) => [`${t.template}/${t.diskSizeMb}`, t.size]),
    );
    // 30 a minute, one at a time, is 5 in the next ten seconds; one use is enough for one.
    expect(sizes).toEqual({ "busy/128": MAX_PER_TARGET, "base/1024": 5, "snap1/64": 1 });
  });

  it("stays as large as the last ten minutes' largest burst", () => {
    const clock = manualClock();
    const demand = new CreateDemand(floor, clock.now);
    const size = () => demand.targets().find((t) => t.template === "batch")?.size;
    for (let i = 0; i < 20; i++) demand.record("batch", 64);
    clock.advance(5 * DEMAND_WINDOW_MS);
    // Long past the rate's window, the next batch of 20 finds 20 ready.
    expect(size()).toBe(20);
    // A smaller burst since does not shrink it, and is what is left when the larger one is over.
    for (let i = 0; i < 5; i++) demand.record("batch", 64);
    clock.advance(BURST_MEMORY_MS - 5 * DEMAND_WINDOW_MS + 1);
    expect(size()).toBe(5);
    clock.advance(5 * DEMAND_WINDOW_MS);
    expect(size()).toBe(undefined);
  });

  it("decays to none for what was not used lately, to one for the default template", () => {
    const clock = manualClock();
    const demand = new CreateDemand(floor, clock.now);
    for (let i = 0; i < 12; i++) {
      demand.record("base", 1024);
      clock.advance(1_000);
    }
    demand.record("snap1", 64);
    clock.advance(DEMAND_WINDOW_MS / 2);
    demand.record("snap2", 64);
    clock.advance(DEMAND_WINDOW_MS / 2 + 1);
    expect(demand.targets()).toEqual([{ template: "snap2", diskSizeMb: 64, size: 1 }, floor]);
    demand.forget("snap2");
    expect(demand.targets()).toEqual([floor]);
  });
});

/**
 * A pool over fake sandboxes (numbered objects): what is under test is when and how many the
 * pool builds and discards, not the sandboxes themselves (the namespace runtime's tests are).
 */
function fakePool(opts: { memoryMb: number; itemMb: number; refillDelayMs?: number }) {
  const clock = manualClock();
  const made: SizedTarget[] = [];
  const discarded: number[] = [];
  let next = 0;
  const pool = new WarmPool<{ n: number }>({
    setting: { mode: "auto", memoryMb: opts.memoryMb, defaultTemplate: "base" },
    defaultDiskSizeMb: 1024,
    make: async (target) => {
      made.push(target);
      await sleep(1);
      return { n: next++ };
    },
    discard: async (item) => {
      discarded.push(item.n);
      return [];
    },
    memoryOf: async () => opts.itemMb * MiB,
    logger: silentLogger(),
    refillDelayMs: opts.refillDelayMs ?? 0,
    tickMs: 3_600_000,
    // The quiet time after a create is waited for in real time.
    now: opts.refillDelayMs ? Date.now : clock.now,
  });
  return { pool, clock, made, discarded };
}

describe("WarmPool (auto)", () => {
  it("fills the default template's one, then follows demand up to the memory budget", async () => {
    const { pool, made } = fakePool({ memoryMb: 350, itemMb: 100 });
    try {
      pool.fill();
      await pool.idle();
      expect(pool.size).toBe(1);
      const creating = pool.begin();
      for (let i = 0; i < 60; i++) creating.record("base", 1024);
      creating.end();
      pool.fill();
      await pool.idle();
      // Demand asks for the cap (a burst of 60); 350 MiB holds three of 100 MiB.
      expect(pool.size).toBe(3);
      expect(pool.heldBytes).toBe(300 * MiB);
      expect(made.every((t) => t.template === "base" && t.diskSizeMb === 1024)).toBe(true);
      expect(pool.take("base", 1024)).toBeDefined();
      expect(pool.take("base", 512)).toBeUndefined();
    } finally {
      expect(await pool.drain()).toEqual([]);
    }
  });

  it("builds nothing while a create is under way, nor for a quiet time after it", async () => {
    const { pool, made } = fakePool({ memoryMb: 1000, itemMb: 10, refillDelayMs: 50 });
    try {
      const creating = pool.begin();
      pool.fill();
      await sleep(100);
      expect(made).toEqual([]);
      creating.end();
      await pool.idle();
      expect(made).toHaveLength(1);
    } finally {
      await pool.drain();
    }
  });

  it("says when no create has been under way for the refill delay (what the disk pool's refills wait for)", async () => {
    const { pool } = fakePool({ memoryMb: 1000, itemMb: 10, refillDelayMs: 200 });
    try {
      await pool.quiet();
      const first = pool.begin();
      const second = pool.begin();
      let quiet = false;
      void pool.quiet().then(() => {
        quiet = true;
      });
      first.end();
      await sleep(20);
      expect(quiet).toBe(false);
      second.end();
      // Not at once: the sandbox just made gets its first commands without a refill beside them.
      await sleep(20);
      expect(quiet).toBe(false);
      await sleep(400);
      expect(quiet).toBe(true);
      // Closing releases whoever still waits.
      pool.begin();
      const waiting = pool.quiet();
      await pool.drain();
      await waiting;
    } finally {
      await pool.drain();
    }
  });

  it("discards what demand no longer asks for, and what a forgotten snapshot had", async () => {
    const { pool, clock, discarded } = fakePool({ memoryMb: 1000, itemMb: 10 });
    try {
      const creating = pool.begin();
      creating.record("snap1", 64);
      // 18 in the minute, one at a time (no burst): 3 for the next ten seconds.
      for (let i = 0; i < 18; i++) {
        creating.record("snap2", 64);
        clock.advance(1_000);
      }
      creating.end();
      pool.fill();
      await pool.idle();
      expect(pool.size).toBe(1 + 1 + 3);
      expect(await pool.forget("snap1", () => true)).toEqual([]);
      // `uses` said yes to every ready one: all gone, only the default is wanted back.
      expect(pool.size).toBe(0);
      clock.advance(DEMAND_WINDOW_MS + 1);
      pool.fill();
      await pool.idle();
      expect(pool.size).toBe(1);
      expect(discarded).toHaveLength(5);
    } finally {
      await pool.drain();
    }
  });
});

describe("WarmPool (fixed size)", () => {
  it.each([
    ["", Date.now],
    // Date.now and the event loop's own clock, which times timers, drift apart on a busy host;
    // here by a fifth, so the timer always fires before the pool's clock says the backoff is over.
    [", even when its timer fires before its clock says so", slowClock(0.8)],
  ])(
    "tries a failed build again by itself after the backoff, with no create to ask%s",
    async (_what, now) => {
      let attempts = 0;
      // Fake sandboxes, as above: the first build fails as one does on a starved host.
      const pool = new WarmPool<{ n: number }>({
        setting: [{ template: "base", size: 1 }],
        defaultDiskSizeMb: 1024,
        make: async () => {
          if (attempts++ === 0) throw new Error("envd did not answer in time");
          return { n: attempts };
        },
        discard: async () => [],
        logger: silentLogger(),
        now,
      });
      try {
        pool.fill();
        await pool.idle();
        expect(pool.size).toBe(0);
        for (let i = 0; i < 100 && pool.size === 0; i++) await sleep(50);
        expect({ size: pool.size, attempts }).toEqual({ size: 1, attempts: 2 });
      } finally {
        expect(await pool.drain()).toEqual([]);
      }
    },
  );
});

/** A clock that runs at `rate` of real time from now on. */
function slowClock(rate: number): () => number {
  const start = Date.now();
  return () => start + (Date.now() - start) * rate;
}
