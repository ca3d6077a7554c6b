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

/** Reads `WRENN_*` variables; anything not set falls back to a single-host default. */
export function loadConfig(env: Env = process.env): ServerConfig {
  const databaseUrl = env.WRENN_DATABASE_URL || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ServerError(
      "invalid_argument",
      "WRENN_DATABASE_URL must be a postgres:// URL (leave it unset for SQLite)",
    );
  }
  return {
    port: intFrom(env, "WRENN_PORT", 3000, 0, 65_535),
    host: env.WRENN_HOST || "127.0.0.1",
    dataDir: env.WRENN_DATA_DIR || join(homedir(), ".wrenn"),
    databaseUrl,
    jwtSecret: env.WRENN_JWT_SECRET || undefined,
    jwtTtlSec: intFrom(env, "WRENN_JWT_TTL_SEC", 24 * 3600, 60, 365 * 24 * 3600),
    bodyLimitBytes: intFrom(env, "WRENN_BODY_LIMIT_BYTES", 1024 * 1024, 1024, 1024 ** 3),
    logLevel: env.WRENN_LOG_LEVEL || "info",
    defaultTemplate: env.WRENN_DEFAULT_TEMPLATE || "base",
  };
}
