import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { type Figure, round } from "./stats.js";

const MiB = 1024 * 1024;
const PROBE = fileURLToPath(new URL("./memory-probe.mjs", import.meta.url));

/** What memory-probe.mjs writes: bytes, after a forced full GC. */
interface ProbeSample {
  seq: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  handles: number;
}

/** One reading of one process, in MiB, `t` seconds into the traffic. */
export interface MemorySample {
  t: number;
  rssMb: number;
  heapMb: number;
  /** What V8 holds from the system for its heap, used or not. */
  heapTotalMb: number;
  externalMb: number;
  handles: number;
}

/** The environment that loads the bench-only memory probe into a server or agent process. */
export function probeEnv(file: string): Record<string, string> {
  return { NODE_OPTIONS: `--import=${PROBE}`, WRENN_BENCH_MEMORY_FILE: file };
}

/** Asks the probe in `pid` for a reading (SIGUSR2) and waits for it. */
async function probe(pid: number, file: string, timeoutMs = 30_000): Promise<ProbeSample> {
  const last = readProbe(file)?.seq ?? 0;
  process.kill(pid, "SIGUSR2");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const sample = readProbe(file);
    if (sample && sample.seq > last) return sample;
    if (Date.now() > deadline) throw new Error(`memory probe of pid ${pid} did not answer`);
    await sleep(50);
  }
}

function readProbe(file: string): ProbeSample | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as ProbeSample;
  } catch {
    return undefined;
  }
}

/** Memory readings of one process over the run. */
export class MemorySeries {
  readonly samples: MemorySample[] = [];

  constructor(
    readonly who: string,
    private readonly pid: number,
    private readonly file: string,
  ) {}

  async sample(t: number): Promise<void> {
    const s = await probe(this.pid, this.file);
    this.samples.push({
      t: round(t, 1),
      rssMb: round(s.rss / MiB, 1),
      heapMb: round(s.heapUsed / MiB, 1),
      heapTotalMb: round(s.heapTotal / MiB, 1),
      externalMb: round(s.external / MiB, 1),
      handles: s.handles,
    });
  }
}

/** Least-squares slope of `y` over `t` (seconds), per minute. */
export function slopePerMinute(points: { t: number; y: number }[]): number {
  if (points.length < 2) return Number.NaN;
  const n = points.length;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.y - my);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? Number.NaN : (num / den) * 60;
}

/**
 * Growth after warm-up: the first reading at or past `warmupSec` against the last, and the
 * slope over the readings from warm-up on. A leak is a steady slope; warm-up is a step that
 * flattens, which the readings before `warmupSec` absorb.
 */
export function memoryFigures(suite: string, series: MemorySeries, warmupSec: number): Figure[] {
  const all = series.samples;
  const after = all.filter((s) => s.t >= warmupSec);
  const first = all[0];
  const warm = after[0];
  const end = after.at(-1);
  if (!first || !warm || !end || after.length < 2) return [];
  const slope = (pick: (s: MemorySample) => number) =>
    round(slopePerMinute(after.map((s) => ({ t: s.t, y: pick(s) }))), 3);
  const span = `t=${warm.t}→${end.t} s`;
  const growth = (what: string, pick: (s: MemorySample) => number, goal: string): Figure => ({
    suite,
    name: `${series.who} ${what}, growth after warm-up`,
    value: round(pick(end) - pick(warm)),
    unit: "MiB",
    note: `${round(pick(warm), 1)} → ${round(pick(end), 1)} MiB (${span}; ${round(pick(first), 1)} before traffic), slope ${slope(pick)} MiB/min${goal}`,
  });
  return [
    // What the program holds on to: the figure a leak moves.
    growth("heap used after GC", (s) => s.heapMb, " (goal: flat)"),
    // Memory outside V8's heap (Node, libuv, malloc, buffers): a native leak moves this one.
    growth("RSS outside V8's heap", (s) => s.rssMb - s.heapTotalMb, " (goal: flat)"),
    // Includes V8 growing its young generation to its bound under allocation pressure (a step).
    growth("RSS", (s) => s.rssMb, ""),
    {
      suite,
      name: `${series.who} open handles`,
      value: end.handles,
      unit: "count",
      note: `${first.handles} before traffic, ${warm.handles} after warm-up, slope ${slope((s) => s.handles)}/min`,
    },
  ];
}

/** The readings side by side, one line per sampling moment (stderr: the log of the run). */
export function printSeries(series: MemorySeries[]): void {
  const head = ["t s", ...series.flatMap((s) => [`${s.who} rss`, "heap", "of", "ext", "handles"])];
  const rows = (series[0]?.samples ?? []).map((_, i) => [
    String(series[0]?.samples[i]?.t),
    ...series.flatMap((s) => {
      const x = s.samples[i];
      return x
        ? [x.rssMb, x.heapMb, x.heapTotalMb, x.externalMb, x.handles].map(String)
        : ["", "", "", "", ""];
    }),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join("  ");
  console.error("bench load: memory after forced GC (MiB), per sampling moment");
  console.error(line(head));
  for (const row of rows) console.error(line(row));
}
