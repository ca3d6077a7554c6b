export type { AgentConfig } from "./config.js";
export { DEFAULT_TEMPLATE, defaultEnvdDir, loadConfig, parseWarmPool } from "./config.js";
export { loadEnvFile } from "./env-file.js";
