import pino, { type Logger } from "pino";

export type { Logger } from "pino";

export function createLogger(level = process.env.WRENN_LOG_LEVEL || "info"): Logger {
  return pino({ name: "wrenn-agent", level });
}

/** A logger that drops everything (tests, embedding without logs). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/**
 * Times one operation step by step, for the one log line per operation:
 * `{ op, ms, steps: { disk: 3.1, network: 9.4, … } }`.
 */
export class StepTimer {
  readonly steps: Record<string, number> = {};
  private readonly started = performance.now();

  async step<T>(name: string, work: () => Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await work();
    } finally {
      this.steps[name] = round(performance.now() - t);
    }
  }

  get ms(): number {
    return round(performance.now() - this.started);
  }
}
