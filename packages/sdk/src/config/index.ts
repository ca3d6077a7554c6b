export type { ConfigSource, ConnectionOpts, LoadConfigOptions, ResolvedConfig } from "./config.js";
export { DEFAULT_API_URL, loadConfig, requireConfig } from "./config.js";
