export type { AgentConfig } from "./config.js";
export { defaultEnvdDir, loadConfig } from "./config.js";
