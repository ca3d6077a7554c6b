export { isForkLayer, MAX_FORKS, refuseForkLayer } from "./fork-layers.js";
export { DEFAULT_LIMITS, lockedLimits } from "./limits.js";
export type { MicroVmRuntimeOptions } from "./microvm/index.js";
export { detectAccel, MicroVmRuntime, microVmUnavailable } from "./microvm/index.js";
export type { NamespaceRuntimeOptions } from "./namespace/index.js";
export { ENVD_PORT, NamespaceRuntime, SANDBOX_HOSTNAME } from "./namespace/index.js";
export type { RuntimeEntry } from "./runtime-set.js";
export { RuntimeSet } from "./runtime-set.js";
export { createRuntimeSet } from "./select.js";
export type {
  AdoptReport,
  ForkResult,
  ForkTarget,
  Runtime,
  SandboxInfo,
  SandboxMetrics,
  SandboxSpec,
  SandboxStatus,
  SnapshotInfo,
  TemplateSummary,
} from "./types.js";
export type { WarmPoolAuto, WarmPoolSetting, WarmPoolTarget } from "./warm-pool/index.js";
export { isAutoPool } from "./warm-pool/index.js";
