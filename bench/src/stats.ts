/** One measured figure: a name, a value and its unit, with an optional note (e.g. the baseline). */
export interface Figure {
  suite: string;
  name: string;
  value: number;
  unit: string;
  note?: string;
  /** For a goal: the baseline measured in the same run, value ÷ baseline, the goal, and whether it is met. */
  baseline?: number;
  baselineWhat?: string;
  ratio?: number;
  goal?: string;
  met?: boolean;
}

export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

/** Milliseconds since `start` (a process.hrtime.bigint() reading). */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Runs `fn` `runs` times in a row after `warmup` unmeasured runs; returns each run's ms. */
export async function timeRuns(
  runs: number,
  fn: () => Promise<void>,
  warmup = 5,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await fn();
    samples.push(msSince(start));
  }
  return samples;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function printTable(figures: Figure[]): void {
  const rows = figures.map((f) => [f.suite, f.name, String(round(f.value)), f.unit, f.note ?? ""]);
  const header = ["suite", "figure", "value", "unit", "note"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of rows) console.log(line(row));
}
