export type { NamespaceRuntimeOptions } from "./namespace-runtime.js";
export {
  DEFAULT_LIMITS,
  ENVD_PORT,
  NamespaceRuntime,
  SANDBOX_HOSTNAME,
} from "./namespace-runtime.js";
export type { WarmPoolTarget } from "./warm-pool.js";
