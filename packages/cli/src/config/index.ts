export type { ClientConfig } from "./config-file.js";
export { configPath, forgetApiKey, readConfig, writeConfig } from "./config-file.js";
