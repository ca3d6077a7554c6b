export type { Logger } from "./logger.js";
export { createLogger, StepTimer, silentLogger } from "./logger.js";
