export type { AgentConfig } from "./config.js";
export {
  DEFAULT_TEMPLATE,
  defaultEnvdDir,
  loadConfig,
  parseRuntimes,
  parseWarmPool,
  RUNTIME_NAMES,
} from "./config.js";
export { loadEnvFile } from "./env-file.js";
