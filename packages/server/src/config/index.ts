export type {
  LayerCacheBudget,
  RateLimits,
  ServerConfig,
  SignupMode,
  TeamQuotaLimits,
} from "./config.js";
export { loadConfig, TEAM_QUOTA_NAMES } from "./config.js";
