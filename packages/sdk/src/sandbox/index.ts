export type { SandboxCreateOpts, SandboxListOpts } from "./sandbox.js";
export { Sandbox } from "./sandbox.js";
export type {
  SandboxInfo,
  SandboxMetrics,
  SandboxNetworkInfo,
  SandboxNetworkRules,
  SandboxState,
} from "./types.js";
