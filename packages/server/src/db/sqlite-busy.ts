import { setTimeout as sleep } from "node:timers/promises";
import { type DatabaseConnection, type Driver, SqliteDialect } from "kysely";
import { ServerError } from "../errors.js";

/** How long a statement keeps trying while another process holds SQLite's write lock. */
export const SQLITE_BUSY_DEADLINE_MS = 5_000;
const MAX_BACKOFF_MS = 50;

/**
 * better-sqlite3 is synchronous: with a busy_timeout, a statement that meets another process's
 * write lock blocks the whole event loop until the lock goes. So SQLite runs with
 * busy_timeout = 0 and this dialect retries a busy statement after yielding (a few ms, growing),
 * for up to SQLITE_BUSY_DEADLINE_MS; then the request fails as 503 unavailable. Only plain
 * SQLITE_BUSY is retried: SQLITE_BUSY_SNAPSHOT needs its transaction restarted, not a retry.
 */
export class YieldingSqliteDialect extends SqliteDialect {
  override createDriver(): Driver {
    const driver = super.createDriver();
    const acquire = driver.acquireConnection.bind(driver);
    const wrappers = new WeakMap<DatabaseConnection, DatabaseConnection>();
    driver.acquireConnection = async () => {
      const connection = await acquire();
      let wrapper = wrappers.get(connection);
      if (!wrapper) {
        wrapper = retryingWhileBusy(connection);
        wrappers.set(connection, wrapper);
      }
      return wrapper;
    };
    return driver;
  }
}

function retryingWhileBusy(connection: DatabaseConnection): DatabaseConnection {
  return {
    async executeQuery(query) {
      const deadline = Date.now() + SQLITE_BUSY_DEADLINE_MS;
      for (let attempt = 0; ; attempt++) {
        try {
          return await connection.executeQuery(query);
        } catch (err) {
          if ((err as { code?: unknown }).code !== "SQLITE_BUSY") throw err;
          if (Date.now() >= deadline) {
            throw new ServerError(
              "unavailable",
              "the database is busy (another process holds its write lock); retry",
              { cause: err },
            );
          }
          await sleep(Math.min(2 ** attempt, MAX_BACKOFF_MS));
        }
      }
    },
    streamQuery: (query, chunkSize) => connection.streamQuery(query, chunkSize),
  };
}
