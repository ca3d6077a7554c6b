import pino, { type Logger } from "pino";
import { humanStream } from "./human-format.js";

export type LogFormat = "json" | "human";

/** `WRENN_LOG_FORMAT` (json or human), else human on a terminal and JSON everywhere else. */
export function logFormat(
  env: NodeJS.ProcessEnv = process.env,
  out: { isTTY?: boolean } = process.stdout,
): LogFormat {
  const asked = env.WRENN_LOG_FORMAT?.trim().toLowerCase();
  if (asked === "json" || asked === "human") return asked;
  return out.isTTY ? "human" : "json";
}

/** The server's logger: pino, writing JSON lines or, for a person at a terminal, human ones. */
export function createLogger(
  options: { name: string; level: string },
  env: NodeJS.ProcessEnv = process.env,
): Logger {
  if (logFormat(env) === "json") return pino(options);
  return pino(options, humanStream({ out: process.stdout }));
}
