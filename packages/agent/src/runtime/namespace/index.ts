export type { NamespaceRuntimeOptions } from "./namespace-runtime.js";
export { DEFAULT_LIMITS, ENVD_PORT, NamespaceRuntime } from "./namespace-runtime.js";
