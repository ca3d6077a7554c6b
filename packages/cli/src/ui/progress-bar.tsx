import { Text } from "ink";
import { formatBytes, formatDuration } from "../services/format.js";

export interface ProgressStats {
  /** 0..1 */
  fraction: number;
  /** Bytes per second since the start. */
  rate: number;
  /** Milliseconds left at that rate; undefined until there is a rate. */
  etaMs: number | undefined;
}

export function progressStats(done: number, total: number, elapsedMs: number): ProgressStats {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  const etaMs = rate > 0 ? Math.max(0, ((total - done) / rate) * 1000) : undefined;
  return { fraction, rate, etaMs };
}

export interface ProgressBarProps {
  /** What is moving now (a file name). */
  label: string;
  done: number;
  total: number;
  elapsedMs: number;
  /** Bar width in cells. */
  width?: number;
}

/** `label [█████░░░░] 45%  12 MiB / 27 MiB  5.1 MiB/s  ETA 3s` */
export function ProgressBar({ label, done, total, elapsedMs, width = 24 }: ProgressBarProps) {
  const { fraction, rate, etaMs } = progressStats(done, total, elapsedMs);
  const filled = Math.round(fraction * width);
  return (
    <Text>
      <Text color="cyan">{"█".repeat(filled)}</Text>
      <Text dimColor>{"░".repeat(width - filled)}</Text>{" "}
      {String(Math.floor(fraction * 100)).padStart(3)}%{"  "}
      {formatBytes(done)} / {formatBytes(total)}
      {"  "}
      {formatBytes(Math.round(rate))}/s{"  "}ETA {etaMs === undefined ? "-" : formatDuration(etaMs)}
      {"  "}
      <Text dimColor>{label}</Text>
    </Text>
  );
}
