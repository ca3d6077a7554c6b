// The server relays transfers too, in its own process when no agent is embedded.
export { raiseMallocThresholds } from "@wrenn/envd";
export type { AgentConfig } from "./config/index.js";
export { defaultEnvdDir, loadConfig, loadEnvFile, warmPoolFromEnv } from "./config/index.js";
export { CRASH_AT_ENV, crashPoint } from "./crash/index.js";
export type { AgentErrorCode } from "./errors.js";
export { AgentError, ERROR_CODE_HEADER } from "./errors.js";
export type {
  ControlPlaneOptions,
  CredentialsResponse,
  FleetMemberOptions,
  HeartbeatResponse,
  HostCredentials,
} from "./fleet/index.js";
export {
  ControlPlane,
  ControlPlaneError,
  CRASH_AFTER_REFRESH_ENV,
  CREDENTIALS_FILE,
  checkServerUrl,
  FleetMember,
  isPrivateAddress,
  readCredentials,
  writeCredentials,
} from "./fleet/index.js";
export type { DirLock, ProcessStamp } from "./lock/index.js";
export { acquireDirLock } from "./lock/index.js";
export type { Logger } from "./logger/index.js";
export { createLogger, StepTimer, silentLogger } from "./logger/index.js";
export type { CidrClaim, ClaimCidrOptions } from "./network/index.js";
export {
  AddressPool,
  CIDR_CLAIMS_DIR,
  claimSandboxCidr,
  hostIfName,
  keepHostFirewallState,
  listInternetMembers,
  netnsName,
  removeHostFirewall,
} from "./network/index.js";
export type { EnvdProxyOptions } from "./proxy/index.js";
export {
  EnvdProxy,
  endRelay,
  FORWARDED_AUTHORIZATION_HEADER,
  parseProxyPath,
  unreachableMessage,
} from "./proxy/index.js";
export type { ReaperOptions } from "./reaper/index.js";
export { Reaper } from "./reaper/index.js";
export type { Agent, CreateAgentOptions } from "./rpc/index.js";
export { createAgent, createHostAgentService } from "./rpc/index.js";
export type {
  AdoptReport,
  MicroVmRuntimeOptions,
  NamespaceRuntimeOptions,
  Runtime,
  SandboxInfo,
  SandboxMetrics,
  SandboxSpec,
  SandboxStatus,
  SnapshotInfo,
  TemplateSummary,
  WarmPoolAuto,
  WarmPoolSetting,
  WarmPoolTarget,
} from "./runtime/index.js";
export {
  createRuntimeSet,
  DEFAULT_LIMITS,
  detectAccel,
  ENVD_PORT,
  MicroVmRuntime,
  microVmUnavailable,
  NamespaceRuntime,
  RuntimeSet,
  SANDBOX_HOSTNAME,
} from "./runtime/index.js";
export type { SandboxPhase, SandboxRecord, SnapshotRecord } from "./state/index.js";
export { assertSandboxId, isSandboxId, StateStore } from "./state/index.js";
export { debianMirror } from "./template/index.js";
export { handleSnapshotArchive, SNAPSHOT_HEADER } from "./transfer/index.js";
