export type { ServerConfig } from "./config.js";
export { loadConfig } from "./config.js";
