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
 * Reads of a SQLite database run there and then, on the caller's turn of the event loop:
 * Kysely's own path takes its connection lock, runs its plugins and resolves some ten promises
 * around a statement that better-sqlite3 runs synchronously, which cost a `GET` of one sandbox
 * a third of its CPU. Safe whenever Kysely could not hold the connection in a state another
 * statement must not see: no transaction is open and no stream is being read.
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
  // better-sqlite3 refuses every other statement while an iterator is open.
  let streaming = 0;
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
          iterate: (parameters) => counted(sqlite.prepare(text).iterate(parameters)),
        };
        statements.set(text, statement);
      }
      return statement;
    },
  };
  function* counted(rows: IterableIterator<unknown>): IterableIterator<unknown> {
    streaming++;
    try {
      yield* rows;
    } finally {
      streaming--;
    }
  }
  const reads: DirectReads = {
    all(sql, parameters) {
      if (sqlite.inTransaction || streaming > 0 || !sqlite.open) return undefined;
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
