import type { Writable } from "node:stream";

// pino records as lines a person reads on a terminal: time, a level only when it matters, the
// message and its fields. A template build (hundreds of debootstrap lines) becomes one line per
// phase plus a single status line that updates in place.

type LogRecord = Record<string, unknown> & { level: number; time?: number; msg?: string };

/** Fields that say nothing to a person reading along (JSON logs keep them all). */
const HIDDEN = new Set([
  "level",
  "time",
  "msg",
  "pid",
  "hostname",
  "name",
  "component",
  "v",
  "op",
  "steps",
  "requestId",
]);
const LEVELS: Record<number, { label: string; color: number }> = {
  10: { label: "trace", color: 90 },
  20: { label: "debug", color: 90 },
  40: { label: "warn", color: 33 },
  50: { label: "error", color: 31 },
  60: { label: "fatal", color: 31 },
};

export interface HumanStreamOptions {
  /** Where lines go, e.g. process.stdout. */
  out: Pick<Writable, "write"> & { isTTY?: boolean };
  /** ANSI colors and the in-place status line (default: `out.isTTY` and no NO_COLOR). */
  color?: boolean;
}

function value(v: unknown): string {
  if (typeof v === "string") return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  if (v instanceof Object) return JSON.stringify(v);
  return String(v);
}

/** The phase of a template build line: debootstrap's `I: Retrieving x` → "Retrieving". */
function phaseOf(progress: string): string {
  const step = /^I: ([A-Z][a-z]+)/.exec(progress)?.[1];
  return step ?? progress;
}

/** A pino destination (`pino(options, humanStream(...))`) writing human lines. */
export function humanStream(options: HumanStreamOptions) {
  const { out } = options;
  const tty = options.color ?? (Boolean(out.isTTY) && !process.env.NO_COLOR);
  const paint = (code: number, text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
  let status = false; // a status line is on screen, to be replaced or cleared
  let build: { template: string; phase: string; lines: number } | undefined;

  const print = (line: string) => {
    out.write(`${status ? "\r\x1b[K" : ""}${line}\n`);
    status = false;
  };

  const templateProgress = (template: string, progress: string) => {
    const phase = phaseOf(progress);
    if (build?.template !== template || build.phase !== phase) {
      build = { template, phase, lines: 0 };
      print(
        `${paint(36, "▸")} template ${template}: ${phase === progress ? progress : `${phase}…`}`,
      );
    }
    build.lines++;
    if (phase === progress) return;
    if (tty) {
      const width = Math.max(20, ((out as { columns?: number }).columns ?? 100) - 12);
      out.write(
        `\r\x1b[K${paint(90, `  ${String(build.lines).padStart(4)}  ${progress.slice(0, width)}`)}`,
      );
      status = true;
    }
  };

  const format = (record: LogRecord): string => {
    const time = new Date(record.time ?? Date.now()).toTimeString().slice(0, 8);
    const level = LEVELS[record.level];
    const err = record.err as { message?: string; stack?: string } | undefined;
    let text: string;
    if (record.msg === "request") {
      const status = Number(record.status);
      text = `${record.method} ${record.path} ${paint(status >= 500 ? 31 : status >= 400 ? 33 : 32, String(status))} ${record.ms} ms`;
    } else {
      const fields = Object.entries(record)
        .filter(([k, v]) => !HIDDEN.has(k) && k !== "err" && v !== undefined)
        .map(([k, v]) => paint(90, `${k}=`) + value(v));
      text = [record.msg ?? "", ...fields].join(" ");
    }
    if (err)
      text += `: ${record.level >= 50 && err.stack ? err.stack : (err.message ?? value(err))}`;
    const head = paint(90, time);
    return level ? `${head} ${paint(level.color, level.label)} ${text}` : `${head} ${text}`;
  };

  return {
    write(line: string): void {
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        print(line.trimEnd());
        return;
      }
      // Readiness polls (npm start asks every second while the template builds) are not news.
      if (record.msg === "request" && record.path === "/health") return;
      if (record.msg === "template build" && typeof record.progress === "string") {
        templateProgress(String(record.template), record.progress);
        return;
      }
      if (record.msg === "template built") build = undefined;
      print(format(record));
    },
  };
}
