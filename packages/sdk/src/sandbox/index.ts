export type { SandboxCreateOpts, SandboxListOpts } from "./options.js";
export { Sandbox } from "./sandbox.js";
export type {
  SandboxInfo,
  SandboxMetrics,
  SandboxNetworkInfo,
  SandboxNetworkRules,
  SandboxState,
} from "./types.js";
