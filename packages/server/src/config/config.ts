import { homedir } from "node:os";
import { join } from "node:path";
import { ServerError } from "../errors.js";

/** Everything the server reads from its environment, resolved once at start. */
export interface ServerConfig {
  /** Port the HTTP API listens on. */
  port: number;
  /** Address the HTTP API binds to; loopback unless told otherwise. */
  host: string;
  /** Where the SQLite file, the JWT secret and other local state live. */
  dataDir: string;
  /** `postgres://…` selects PostgreSQL; unset selects SQLite in `dataDir`. */
  databaseUrl: string | undefined;
  /** HS256 secret for user tokens; unset means one generated and kept in `dataDir`. */
  jwtSecret: string | undefined;
  /** Lifetime of a login token. */
  jwtTtlSec: number;
  /** Largest JSON request body accepted. */
  bodyLimitBytes: number;
  logLevel: string;
  /** Template a sandbox starts from when the request names none. */
  defaultTemplate: string;
  /** `WRENN_EMBEDDED_AGENT=false`: no agent in this process; hosts register (multi-host). */
  embeddedAgent: boolean;
  /** `WRENN_SCHEDULER`: how creates pick among ready hosts. */
  scheduler: "least-loaded" | "round-robin";
  /** `WRENN_HEARTBEAT_SEC`: how often agents report (told to them at registration). */
  heartbeatSec: number;
  /** `WRENN_HOST_STALE_SEC`: a host silent this long is unreachable. */
  hostStaleSec: number;
  /** `WRENN_RECONCILE_INTERVAL_MS`: how often the host monitor and reconciler run. */
  reconcileIntervalMs: number;
  /** `WRENN_HOST_JWT_TTL_SEC`: lifetime of a host JWT (7 days). */
  hostJwtTtlSec: number;
  /** `WRENN_TLS_CERT` / `WRENN_TLS_KEY`: PEM files; when both are set the API serves HTTPS. */
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  /**
   * `WRENN_DOMAIN`: requests for `<port>-<sandboxId>.<domain>` go to that port of that sandbox
   * (49983: its envd), and E2B clients are told this domain.
   */
  domain?: string;
  /** `WRENN_RETENTION_DAYS`: stopped sandbox rows are deleted this long after they stopped. */
  retentionDays: number;
  /** `WRENN_ORPHAN_GRACE_SEC`: a sandbox or snapshot on a host that no row claims is removed
   * once it is this old. */
  orphanGraceSec: number;
  /** `WRENN_HEADERS_TIMEOUT_MS`: a request's headers must arrive within this (slow-loris). */
  headersTimeoutMs: number;
  /** `WRENN_SIGNUP`: who may sign up; default closed beyond loopback, open on loopback. */
  signup: SignupMode;
  /** Requests allowed per minute: auth routes per client IP and per account, creates per team. */
  rateLimits: RateLimits;
  /** `WRENN_TEAM_*`: what each team may use unless an admin set an override. */
  teamQuotas: TeamQuotaLimits;
  /** `WRENN_TEMPLATE_CACHE_*`: how much of the template build layer cache is kept. */
  layerCache: LayerCacheBudget;
}

/** Cached template build layers kept (every team together); least recently used go first. */
export interface LayerCacheBudget {
  /** `WRENN_TEMPLATE_CACHE_LAYERS` */
  maxLayers: number;
  /** `WRENN_TEMPLATE_CACHE_MB`: their size on a host. */
  maxMb: number;
}

export type SignupMode = "open" | "invite" | "closed";

export interface RateLimits {
  /** `WRENN_RATE_AUTH_IP_PER_MIN` */
  authPerIp: number;
  /** `WRENN_RATE_AUTH_ACCOUNT_PER_MIN` */
  authPerAccount: number;
  /** `WRENN_RATE_CREATE_TEAM_PER_MIN` */
  createsPerTeam: number;
}

/** Per-team limits; the keys are also the names admins override and refusals name. */
export interface TeamQuotaLimits {
  running_sandboxes: number;
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  exec_streams: number;
  file_watches: number;
}

export const TEAM_QUOTA_NAMES = [
  "running_sandboxes",
  "vcpus",
  "memory_mb",
  "disk_mb",
  "exec_streams",
  "file_watches",
] as const satisfies readonly (keyof TeamQuotaLimits)[];

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

function signupFrom(env: Env, host: string): SignupMode {
  const raw = env.WRENN_SIGNUP?.trim().toLowerCase();
  if (raw === undefined || raw === "") return LOOPBACK.has(host) ? "open" : "closed";
  if (raw === "open" || raw === "invite" || raw === "closed") return raw;
  throw new ServerError(
    "invalid_argument",
    `WRENN_SIGNUP must be open, invite or closed, got ${JSON.stringify(raw)}`,
  );
}

function teamQuotasFrom(env: Env): TeamQuotaLimits {
  const max = 1_000_000_000;
  return {
    running_sandboxes: intFrom(env, "WRENN_TEAM_RUNNING_SANDBOXES", 100, 0, max),
    vcpus: intFrom(env, "WRENN_TEAM_VCPUS", 200, 0, max),
    memory_mb: intFrom(env, "WRENN_TEAM_MEMORY_MB", 200 * 1024, 0, max),
    disk_mb: intFrom(env, "WRENN_TEAM_DISK_MB", 1024 * 1024, 0, max),
    exec_streams: intFrom(env, "WRENN_TEAM_EXEC_STREAMS", 200, 0, max),
    file_watches: intFrom(env, "WRENN_TEAM_FILE_WATCHES", 100, 0, max),
  };
}

type Env = Record<string, string | undefined>;

function intFrom(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ServerError(
      "invalid_argument",
      `${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

function boolFrom(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === "") return fallback;
  if (["1", "true", "yes", "on"].includes(raw)) return true;
  if (["0", "false", "no", "off"].includes(raw)) return false;
  throw new ServerError(
    "invalid_argument",
    `${name} must be true or false, got ${JSON.stringify(raw)}`,
  );
}

function schedulerFrom(raw: string | undefined): ServerConfig["scheduler"] {
  if (!raw) return "least-loaded";
  if (raw === "least-loaded" || raw === "round-robin") return raw;
  throw new ServerError(
    "invalid_argument",
    `WRENN_SCHEDULER must be least-loaded or round-robin, got ${JSON.stringify(raw)}`,
  );
}

function tlsFrom(env: Env): Pick<ServerConfig, "tlsCertFile" | "tlsKeyFile"> {
  const cert = env.WRENN_TLS_CERT || undefined;
  const key = env.WRENN_TLS_KEY || undefined;
  if (Boolean(cert) !== Boolean(key)) {
    throw new ServerError(
      "invalid_argument",
      "set both WRENN_TLS_CERT and WRENN_TLS_KEY, or neither",
    );
  }
  return { tlsCertFile: cert, tlsKeyFile: key };
}

function domainFrom(raw: string | undefined): Pick<ServerConfig, "domain"> {
  const domain = raw?.trim().toLowerCase().replace(/\.$/, "");
  if (!domain) return {};
  if (!/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(domain)) {
    throw new ServerError(
      "invalid_argument",
      `WRENN_DOMAIN must be a DNS name such as sandboxes.example.com, got ${JSON.stringify(raw)}`,
    );
  }
  return { domain };
}

/** Reads `WRENN_*` variables; anything not set falls back to a single-host default. */
export function loadConfig(env: Env = process.env): ServerConfig {
  const databaseUrl = env.WRENN_DATABASE_URL || undefined;
  const host = env.WRENN_HOST || "127.0.0.1";
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ServerError(
      "invalid_argument",
      "WRENN_DATABASE_URL must be a postgres:// URL (leave it unset for SQLite)",
    );
  }
  return {
    port: intFrom(env, "WRENN_PORT", 3000, 0, 65_535),
    host,
    dataDir: env.WRENN_DATA_DIR || join(homedir(), ".wrenn"),
    databaseUrl,
    jwtSecret: env.WRENN_JWT_SECRET || undefined,
    jwtTtlSec: intFrom(env, "WRENN_JWT_TTL_SEC", 24 * 3600, 60, 365 * 24 * 3600),
    bodyLimitBytes: intFrom(env, "WRENN_BODY_LIMIT_BYTES", 1024 * 1024, 1024, 1024 ** 3),
    logLevel: env.WRENN_LOG_LEVEL || "info",
    defaultTemplate: env.WRENN_DEFAULT_TEMPLATE || "base",
    embeddedAgent: boolFrom(env, "WRENN_EMBEDDED_AGENT", true),
    scheduler: schedulerFrom(env.WRENN_SCHEDULER),
    heartbeatSec: intFrom(env, "WRENN_HEARTBEAT_SEC", 10, 1, 3600),
    hostStaleSec: intFrom(env, "WRENN_HOST_STALE_SEC", 40, 2, 86_400),
    reconcileIntervalMs: intFrom(env, "WRENN_RECONCILE_INTERVAL_MS", 5_000, 100, 3_600_000),
    hostJwtTtlSec: intFrom(env, "WRENN_HOST_JWT_TTL_SEC", 7 * 24 * 3600, 5, 30 * 24 * 3600),
    ...tlsFrom(env),
    ...domainFrom(env.WRENN_DOMAIN),
    retentionDays: intFrom(env, "WRENN_RETENTION_DAYS", 30, 0, 36_500),
    orphanGraceSec: intFrom(env, "WRENN_ORPHAN_GRACE_SEC", 30, 0, 86_400),
    headersTimeoutMs: intFrom(env, "WRENN_HEADERS_TIMEOUT_MS", 20_000, 500, 600_000),
    signup: signupFrom(env, host),
    rateLimits: {
      authPerIp: intFrom(env, "WRENN_RATE_AUTH_IP_PER_MIN", 60, 1, 1_000_000),
      authPerAccount: intFrom(env, "WRENN_RATE_AUTH_ACCOUNT_PER_MIN", 10, 1, 1_000_000),
      createsPerTeam: intFrom(env, "WRENN_RATE_CREATE_TEAM_PER_MIN", 600, 1, 1_000_000),
    },
    teamQuotas: teamQuotasFrom(env),
    layerCache: {
      maxLayers: intFrom(env, "WRENN_TEMPLATE_CACHE_LAYERS", 500, 0, 1_000_000),
      maxMb: intFrom(env, "WRENN_TEMPLATE_CACHE_MB", 20 * 1024, 0, 1_000_000_000),
    },
  };
}
