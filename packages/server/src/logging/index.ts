export type { HumanStreamOptions } from "./human-format.js";
export { humanStream } from "./human-format.js";
export type { LogFormat } from "./logger.js";
export { createLogger, logFormat } from "./logger.js";
