import type SqliteDatabase from "better-sqlite3";
import {
  CamelCasePlugin,
  type SqliteDatabase as KyselySqliteDatabase,
  type SqliteStatement,
} from "kysely";
import { LRUCache } from "lru-cache";

/** Distinct SQL texts kept prepared (and named, on PostgreSQL); the server issues a few dozen. */
export const STATEMENT_CACHE_SIZE = 256;

type Row = Record<string, unknown>;

/** Kysely's CamelCasePlugin, its row mapping also offered to reads that do not go through Kysely. */
export class RowNaming extends CamelCasePlugin {
  row(row: Row): Row {
    return this.mapRow(row);
  }
}

/**
 * Reads of a SQLite database run there and then, on the caller's turn of the event loop, where
 * Kysely's own path takes its connection lock, runs its plugins and resolves some ten promises
 * around a statement that better-sqlite3 runs synchronously anyway (about 6% of the CPU of a
 * `GET` of one sandbox). Safe whenever no transaction holds the connection: the read runs to its
 * end before anything else can, and sees only committed rows. (better-sqlite3 lets a read run
 * beside an open iterator; it refuses writes there.)
 */
export interface DirectReads {
  /** The rows, named as Kysely names them; undefined when the read must go through Kysely. */
  all(sql: string, parameters: readonly unknown[]): Row[] | undefined;
}

const directReads = new WeakMap<object, DirectReads>();

/** The direct reads of the database `db` was opened on, when it is SQLite (not a transaction). */
export function directReadsOf(db: object): DirectReads | undefined {
  return directReads.get(db);
}

/**
 * Kysely prepares every query anew, and with better-sqlite3 preparing costs more than running a
 * point lookup. Statements are kept by SQL text and reused: better-sqlite3 runs `all`/`run`
 * synchronously, so a statement is never busy when the next query wants it. Streaming
 * (`iterate`) holds a statement open across awaits, so it gets a fresh one. `register` ties the
 * direct reads over the same statements to the Kysely instance made on them.
 */
export function cachingStatements(
  sqlite: SqliteDatabase.Database,
  naming: RowNaming,
): { database: KyselySqliteDatabase; register(db: object): void } {
  const statements = new LRUCache<string, SqliteStatement>({ max: STATEMENT_CACHE_SIZE });
  const database: KyselySqliteDatabase = {
    close: () => sqlite.close(),
    prepare(text) {
      let statement = statements.get(text);
      if (!statement) {
        const prepared = sqlite.prepare(text);
        statement = {
          reader: prepared.reader,
          all: (parameters) => prepared.all(parameters),
          run: (parameters) => prepared.run(parameters),
          iterate: (parameters) => sqlite.prepare(text).iterate(parameters),
        };
        statements.set(text, statement);
      }
      return statement;
    },
  };
  const reads: DirectReads = {
    all(sql, parameters) {
      if (sqlite.inTransaction || !sqlite.open) return undefined;
      const statement = database.prepare(sql);
      if (!statement.reader) return undefined;
      try {
        return (statement.all(parameters) as Row[]).map((row) => naming.row(row));
      } catch (err) {
        // Another process holds the lock: Kysely's path (sqlite-busy.ts) waits for it.
        if ((err as { code?: unknown }).code === "SQLITE_BUSY") return undefined;
        throw err;
      }
    },
  };
  return { database, register: (db) => directReads.set(db, reads) };
}
