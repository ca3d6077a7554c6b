export type { AgentConfig } from "./config.js";
export {
  DEFAULT_TEMPLATE,
  defaultEnvdDir,
  defaultWarmPoolMemoryMb,
  loadConfig,
  parseRuntimes,
  parseWarmPool,
  RUNTIME_NAMES,
  warmPoolFromEnv,
} from "./config.js";
export { loadEnvFile } from "./env-file.js";
