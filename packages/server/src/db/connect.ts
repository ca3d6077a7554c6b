import { mkdirSync } from "node:fs";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { CamelCasePlugin, Kysely, Migrator, PostgresDialect, SqliteDialect } from "kysely";
import pg from "pg";
import { ServerError } from "../errors.js";
import { migrationProvider } from "./migrations.js";
import type { DatabaseSchema } from "./schema.js";

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

/** Opens SQLite (WAL, foreign keys on) or a PostgreSQL pool; runs no migrations. */
export function openDb(options: OpenDbOptions): DbHandle {
  const plugins = [new CamelCasePlugin()];
  if (options.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
    });
    // An idle client that loses its server must not take the process down.
    pool.on("error", () => {});
    const db = new Kysely<DatabaseSchema>({ dialect: new PostgresDialect({ pool }), plugins });
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
  sqlite.pragma("busy_timeout = 5000");
  const db = new Kysely<DatabaseSchema>({
    dialect: new SqliteDialect({ database: sqlite }),
    plugins,
  });
  return { db, dialect: "sqlite", close: () => db.destroy() };
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
