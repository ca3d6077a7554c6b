import type { Logger } from "pino";
import type { HostCredentials, TokenIssuer } from "../auth/index.js";
import type { LayerCacheBudget, SignupMode, TeamQuotaLimits } from "../config/index.js";
import type { Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import type { HostRegistry } from "../hosts/registry.js";
import { AccountService } from "./accounts.js";
import { ApiKeyService } from "./api-keys.js";
import { ExecService } from "./exec.js";
import { FileService } from "./files.js";
import { ForkService } from "./forks.js";
import { type FleetTimings, HostEnrollmentService } from "./host-enrollment.js";
import { HostService } from "./hosts.js";
import { MetricsService } from "./metrics.js";
import { ProcessService } from "./processes.js";
import { QuotaService } from "./quotas.js";
import { RateLimiter } from "./rate-limiter.js";
import type { SandboxDefaults, SandboxPlacer } from "./sandbox-types.js";
import { SandboxService } from "./sandboxes.js";
import { removeRow, SnapshotService } from "./snapshots.js";
import { TemplateService } from "./templates/index.js";
import { LayerCache } from "./templates/layer-cache.js";
import { TicketService } from "./tickets.js";
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
export type { ForkOutcome } from "./forks.js";
export { FORKED_FROM, ForkService, MAX_FORKS } from "./forks.js";
export type {
  FleetTimings,
  HeartbeatInput,
  HostCredentialSet,
  RegisterInput,
} from "./host-enrollment.js";
export { HostEnrollmentService } from "./host-enrollment.js";
export type { HostView } from "./hosts.js";
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
export { QuotaService } from "./quotas.js";
export { RateLimiter } from "./rate-limiter.js";
export type { ReconcileReport, ReconcilerOptions } from "./reconciler.js";
export { DEFAULT_HOST_STALE_SEC, RECONCILE_INTERVAL_MS, Reconciler } from "./reconciler.js";
export type {
  AgentClient,
  AgentHost,
  CreateSandboxInput,
  ListSandboxesInput,
  PlacementRequest,
  SandboxDefaults,
  SandboxPlacer,
} from "./sandbox-types.js";
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, SandboxService } from "./sandboxes.js";
export { SnapshotService } from "./snapshots.js";
export type { BuildEvent, BuiltTemplate, Recipe, RecipeStep } from "./templates/index.js";
export { ndjsonBuildLog, TemplateService } from "./templates/index.js";
export type { DirWatch, FsEvent, FsEventType } from "./watch.js";
export { WatchService } from "./watch.js";

/** Every operation the API (and later the dashboard and E2B-compatible API) can call. */
export interface Services {
  accounts: AccountService;
  quotas: QuotaService;
  tickets: TicketService;
  apiKeys: ApiKeyService;
  sandboxes: SandboxService;
  snapshots: SnapshotService;
  templates: TemplateService;
  forks: ForkService;
  hosts: HostService;
  hostEnrollment: HostEnrollmentService;
  exec: ExecService;
  files: FileService;
  processes: ProcessService;
  watch: WatchService;
  metrics: MetricsService;
}

export interface ServiceDeps {
  store: Store;
  /** `WRENN_TEAM_*` defaults; unlimited when not given. */
  teamQuotas?: TeamQuotaLimits;
  /** Sandbox creates allowed per team per minute; unlimited when not given. */
  createsPerTeamPerMin?: number;
  /** `WRENN_TEMPLATE_CACHE_*`; unbounded when not given. */
  layerCache?: LayerCacheBudget;
  /** `WRENN_SIGNUP`; open when not given. */
  signupMode?: SignupMode;
  tokens: TokenIssuer;
  hostCredentials: HostCredentials;
  logger: Logger;
  /** Where sandboxes go and how their hosts are reached. */
  fleet: SandboxPlacer & { registry: HostRegistry };
  fleetTimings: FleetTimings;
  sandboxDefaults: SandboxDefaults;
}

const UNLIMITED: TeamQuotaLimits = {
  running_sandboxes: Number.MAX_SAFE_INTEGER,
  vcpus: Number.MAX_SAFE_INTEGER,
  memory_mb: Number.MAX_SAFE_INTEGER,
  disk_mb: Number.MAX_SAFE_INTEGER,
  exec_streams: Number.MAX_SAFE_INTEGER,
  file_watches: Number.MAX_SAFE_INTEGER,
};

export function createServices(deps: ServiceDeps): Services {
  const sandboxes = new SandboxService(deps.store, deps.fleet, deps.sandboxDefaults, deps.logger);
  const quotas = new QuotaService(deps.store, deps.teamQuotas ?? UNLIMITED);
  const creates = deps.createsPerTeamPerMin
    ? new RateLimiter(deps.createsPerTeamPerMin)
    : undefined;
  sandboxes.admission = async (teamId, ask) => {
    const wait = creates?.take(teamId) ?? 0;
    if (wait > 0) {
      throw new ServerError(
        "resource_exhausted",
        `rate limit: too many creates for this team; retry after ${wait} s`,
        {
          details: { limit: "creates_per_minute", retry_after_sec: wait },
        },
      );
    }
    await quotas.admitSandbox(teamId, ask);
  };
  sandboxes.admitted = (teamId, ask) => quotas.admitSandbox(teamId, ask, true);
  const hostEnrollment = new HostEnrollmentService(
    deps.store,
    deps.hostCredentials,
    deps.fleetTimings,
    deps.logger,
  );
  const layers = new LayerCache(
    deps.store,
    (row) => removeRow(deps.store, deps.fleet, deps.logger, row),
    deps.layerCache ?? { maxLayers: Number.MAX_SAFE_INTEGER, maxMb: Number.MAX_SAFE_INTEGER },
    deps.logger,
  );
  const snapshots = new SnapshotService(deps.store, sandboxes, deps.fleet, layers, deps.logger);
  const processes = new ProcessService(sandboxes, deps.logger);
  const files = new FileService(sandboxes);
  return {
    quotas,
    tickets: new TicketService(deps.store, sandboxes),
    accounts: new AccountService(deps.store, deps.tokens, deps.logger, deps.signupMode),
    apiKeys: new ApiKeyService(deps.store, deps.logger),
    sandboxes,
    exec: new ExecService(sandboxes, deps.logger),
    files,
    processes,
    watch: new WatchService(sandboxes, deps.logger),
    metrics: new MetricsService(sandboxes),
    snapshots,
    templates: new TemplateService(
      deps.store,
      sandboxes,
      processes,
      files,
      snapshots,
      layers,
      deps.logger,
    ),
    forks: new ForkService(deps.store, sandboxes, deps.logger),
    hosts: new HostService(
      deps.store,
      deps.fleet.registry,
      (teamId) => hostEnrollment.isAdmin(teamId),
      deps.logger,
    ),
    hostEnrollment,
  };
}
