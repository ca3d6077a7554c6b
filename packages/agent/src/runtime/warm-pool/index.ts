export type { WarmPoolAuto, WarmPoolSetting, WarmPoolTarget } from "./demand.js";
export {
  BURST_MEMORY_MS,
  CreateDemand,
  DEMAND_WINDOW_MS,
  MAX_PER_TARGET,
  targetKey,
} from "./demand.js";
export type { SizedTarget, WarmPoolOptions } from "./warm-pool.js";
export { isAutoPool, WarmPool } from "./warm-pool.js";
