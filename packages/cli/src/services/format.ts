import { CliError } from "../errors/index.js";

/** Plain aligned columns (gh-style: no borders, so output greps and cuts well). */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** "3m ago" relative to `now`. */
export function ago(date: Date | undefined, now = Date.now()): string {
  if (!date) return "-";
  return `${formatDuration(Math.max(0, now - date.getTime()))} ago`;
}

/** `k=v` pairs from repeated --metadata flags. */
export function parsePairs(pairs: readonly string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0)
      throw new CliError(
        "invalid_argument",
        `--${flag} takes key=value, got ${JSON.stringify(pair)}.`,
        `Example: --${flag} owner=alice`,
      );
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** JSON with Dates as ISO strings and stable two-space indentation. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** `90`, `90s`, `5m`, `1h` → milliseconds (a bare number is seconds). */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) {
    throw new CliError(
      "invalid_argument",
      `--${flag} takes a duration like 90, 30s, 5m or 1h, got ${JSON.stringify(text)}.`,
    );
  }
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"] ?? 1000;
  return Math.round(Number(match[1]) * scale);
}
