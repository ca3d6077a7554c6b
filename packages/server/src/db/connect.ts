import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import {
  Kysely,
  Migrator,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
} from "kysely";
import { LRUCache } from "lru-cache";
import pg from "pg";
import { ServerError } from "../errors.js";
import { migrationProvider } from "./migrations/index.js";
import type { DatabaseSchema } from "./schema.js";
import { YieldingSqliteDialect } from "./sqlite-busy.js";
import { cachingStatements, RowNaming, STATEMENT_CACHE_SIZE } from "./sqlite-statements.js";

export type Db = Kysely<DatabaseSchema>;
export type DialectName = "sqlite" | "postgres";

/** An open database: the query builder, which engine is behind it, and how to close it. */
export interface DbHandle {
  db: Db;
  dialect: DialectName;
  close(): Promise<void>;
}

export interface OpenDbOptions {
  /** `postgres://…`; when unset, SQLite at `sqliteFile` (or `dataDir/wrenn.db`). */
  databaseUrl?: string | undefined;
  dataDir?: string;
  /** A path, or ":memory:". Wins over `dataDir`. */
  sqliteFile?: string;
  /** Largest number of PostgreSQL connections held at once. */
  poolSize?: number;
}

/** How long a request waits for a PostgreSQL connection before it fails as unavailable. */
export const PG_CONNECT_TIMEOUT_MS = 5_000;

/** Opens SQLite (WAL, foreign keys on) or a PostgreSQL pool; runs no migrations. */
export function openDb(options: OpenDbOptions): DbHandle {
  const naming = new RowNaming();
  const plugins = [naming];
  if (options.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
      // A database that does not answer fails the request (503) instead of queueing it forever.
      connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
    });
    // An idle client that loses its server must not take the process down.
    pool.on("error", () => {});
    const db = new Kysely<DatabaseSchema>({
      dialect: new PostgresDialect({ pool: namingStatements(pool) }),
      plugins,
    });
    return { db, dialect: "postgres", close: () => db.destroy() };
  }
  let file = options.sqliteFile;
  if (!file) {
    if (!options.dataDir) {
      throw new ServerError(
        "invalid_argument",
        "openDb needs a databaseUrl, sqliteFile or dataDir",
      );
    }
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    file = join(options.dataDir, "wrenn.db");
  }
  const sqlite = new SqliteDatabase(file);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("foreign_keys = ON");
  // Never wait inside SQLite (that blocks the event loop): see YieldingSqliteDialect.
  sqlite.pragma("busy_timeout = 0");
  const statements = cachingStatements(sqlite, naming);
  const db = new Kysely<DatabaseSchema>({
    dialect: new YieldingSqliteDialect({ database: statements.database }),
    plugins,
  });
  statements.register(db);
  return { db, dialect: "sqlite", close: () => db.destroy() };
}

/**
 * Kysely sends every query unnamed, so PostgreSQL parses and plans it on each call. Named after
 * their SQL text, parameterised queries are parsed once per connection and then only bound and
 * run: about half the latency of a point lookup, and less client CPU. Queries without
 * parameters (migrations, transaction control) stay unnamed.
 */
function namingStatements(pool: pg.Pool): PostgresPool {
  const names = new LRUCache<string, string>({ max: STATEMENT_CACHE_SIZE });
  const nameOf = (text: string) => {
    let name = names.get(text);
    if (!name) {
      name = `wrenn_${createHash("sha256").update(text).digest("hex").slice(0, 40)}`;
      names.set(text, name);
    }
    return name;
  };
  // Kysely keeps per-client state keyed by the client object: hand it the same wrapper each time.
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    // Kysely calls query(sql, parameters), or query(cursor) when streaming: the latter passes.
    const query = (textOrCursor: unknown, parameters?: readonly unknown[]): unknown =>
      typeof textOrCursor === "string" && parameters && parameters.length > 0
        ? client.query({ name: nameOf(textOrCursor), text: textOrCursor, values: [...parameters] })
        : client.query(textOrCursor as string, parameters as unknown[] | undefined);
    return {
      query: query as unknown as PostgresPoolClient["query"],
      release: () => client.release(),
    };
  };
  return {
    async connect() {
      const client = await pool.connect();
      let wrapper = wrappers.get(client);
      if (!wrapper) {
        // A connection cut while checked out (a database restart) is also emitted as an event:
        // the query under way already fails with it, so unheard it must not end the process.
        client.on("error", () => {});
        wrapper = wrap(client);
        wrappers.set(client, wrapper);
      }
      return wrapper;
    },
    end: () => pool.end(),
  };
}

/** Brings the schema up to the newest migration; returns the names it applied. */
export async function migrateToLatest(db: Db): Promise<string[]> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    throw new ServerError("internal", `database migration failed: ${String(error)}`, {
      cause: error,
    });
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}

/** True when a write failed because a unique column already holds that value. */
export function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== "object" || err === null || !("code" in err)) return false;
  const code = (err as { code: unknown }).code;
  // better-sqlite3 reports SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY; pg reports SQLSTATE 23505.
  return (
    code === "SQLITE_CONSTRAINT_UNIQUE" ||
    code === "SQLITE_CONSTRAINT_PRIMARYKEY" ||
    code === "23505"
  );
}

/** SQLSTATEs of a PostgreSQL that is shutting down, starting, or crashed (57P01–57P03). */
const PG_UNAVAILABLE = new Set(["57P01", "57P02", "57P03"]);
/** Socket errors of a database that cannot be reached right now. */
const UNREACHABLE = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH"]);

/**
 * True when a query failed because the database cannot be reached right now (restarting, down,
 * connection cut): the request is worth retrying, so it answers 503, not 500. The pool opens new
 * connections on the next request, so the server recovers by itself once the database is back.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const { code, syscall, message } = err as {
    code?: unknown;
    syscall?: unknown;
    message?: unknown;
  };
  if (typeof code === "string") {
    if (PG_UNAVAILABLE.has(code) || code.startsWith("08")) return true;
    if (UNREACHABLE.has(code)) return true;
    // A Unix socket that is not there (yet): the server is down or starting.
    if (code === "ENOENT" && syscall === "connect") return true;
  }
  return (
    typeof message === "string" &&
    /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/.test(
      message,
    )
  );
}
