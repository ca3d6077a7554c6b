export type { NamespaceRuntimeOptions, WarmPoolTarget } from "./namespace/index.js";
export {
  DEFAULT_LIMITS,
  ENVD_PORT,
  NamespaceRuntime,
  SANDBOX_HOSTNAME,
} from "./namespace/index.js";
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
