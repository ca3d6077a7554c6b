export { NamespaceRuntime } from "./namespace-runtime.js";
export type { NamespaceRuntimeOptions } from "./parts.js";
export { ENVD_PORT, SANDBOX_HOSTNAME } from "./parts.js";
