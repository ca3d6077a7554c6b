export type { NamespaceRuntimeOptions } from "./namespace/index.js";
export { DEFAULT_LIMITS, ENVD_PORT, NamespaceRuntime } from "./namespace/index.js";
export type {
  AdoptReport,
  Runtime,
  SandboxInfo,
  SandboxMetrics,
  SandboxSpec,
  SandboxStatus,
  SnapshotInfo,
  TemplateSummary,
} from "./types.js";
