import type { Logger } from "pino";
import type { TokenIssuer } from "../auth/index.js";
import type { Store } from "../db/index.js";
import { AccountService } from "./accounts.js";
import { ApiKeyService } from "./api-keys.js";
import { ExecService } from "./exec.js";
import { FileService } from "./files.js";
import { HostService } from "./hosts.js";
import { MetricsService } from "./metrics.js";
import { ProcessService } from "./processes.js";
import { type AgentHost, type SandboxDefaults, SandboxService } from "./sandboxes.js";
import { SnapshotService } from "./snapshots.js";
import { WatchService } from "./watch.js";

export type { LoginResult, SignupResult } from "./accounts.js";
export { AccountService } from "./accounts.js";
export type { ApiKeyView } from "./api-keys.js";
export { ApiKeyService } from "./api-keys.js";
export type { ExecInput, ExecResult } from "./exec.js";
export {
  DEFAULT_EXEC_TIMEOUT_MS,
  ExecService,
  MAX_EXEC_TIMEOUT_MS,
  MAX_OUTPUT_BYTES,
} from "./exec.js";
export type { Download, FileEntry, UploadedFile } from "./files.js";
export { FileService } from "./files.js";
export { HostService } from "./hosts.js";
export type { SandboxMetrics } from "./metrics.js";
export { MetricsService } from "./metrics.js";
export { isSafeName, SAFE_NAME } from "./names.js";
export type { TeamPrincipal, UserPrincipal } from "./principals.js";
export type {
  OutputStream,
  ProcessEnd,
  ProcessRef,
  ProcessStreamEvent,
  ProcessView,
  SignalName,
  StartProcessInput,
} from "./processes.js";
export { ProcessService, ProcessStream, SandboxProcesses } from "./processes.js";
export type { ReconcileReport } from "./reconciler.js";
export { RECONCILE_INTERVAL_MS, Reconciler } from "./reconciler.js";
export type {
  AgentClient,
  AgentHost,
  CreateSandboxInput,
  ListSandboxesInput,
  SandboxDefaults,
} from "./sandboxes.js";
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, SandboxService } from "./sandboxes.js";
export { SnapshotService } from "./snapshots.js";
export type { DirWatch, FsEvent, FsEventType } from "./watch.js";
export { WatchService } from "./watch.js";

/** Every operation the API (and later the dashboard and E2B-compatible API) can call. */
export interface Services {
  accounts: AccountService;
  apiKeys: ApiKeyService;
  sandboxes: SandboxService;
  snapshots: SnapshotService;
  hosts: HostService;
  exec: ExecService;
  files: FileService;
  processes: ProcessService;
  watch: WatchService;
  metrics: MetricsService;
}

export interface ServiceDeps {
  store: Store;
  tokens: TokenIssuer;
  logger: Logger;
  /** Without one, sandboxes can be read but not created or driven (503 unavailable). */
  agent?: AgentHost | undefined;
  sandboxDefaults: SandboxDefaults;
}

export function createServices(deps: ServiceDeps): Services {
  const sandboxes = new SandboxService(deps.store, deps.agent, deps.sandboxDefaults, deps.logger);
  return {
    accounts: new AccountService(deps.store, deps.tokens, deps.logger),
    apiKeys: new ApiKeyService(deps.store, deps.logger),
    sandboxes,
    exec: new ExecService(sandboxes, deps.logger),
    files: new FileService(sandboxes),
    processes: new ProcessService(sandboxes, deps.logger),
    watch: new WatchService(sandboxes, deps.logger),
    metrics: new MetricsService(sandboxes),
    snapshots: new SnapshotService(deps.store, deps.agent, deps.logger),
    hosts: new HostService(deps.store),
  };
}
