import pg from "pg";
import type { Logger } from "pino";

/** Who runs the fleet's periodic duties (host monitor, reconciler): exactly one replica. */
export interface Leadership {
  /** True while this process holds the duty; tries to take it when free. */
  acquire(): Promise<boolean>;
  release(): Promise<void>;
}

/** SQLite: one server per data dir (the data dir is locked), so it always leads. */
export const soleLeader: Leadership = {
  acquire: async () => true,
  release: async () => {},
};

/** Any number that no other application on the database uses for an advisory lock. */
const LOCK_KEY = 0x7772_656e; // "wren"

/**
 * PostgreSQL: a session-level advisory lock held on a connection of its own. When the leading
 * replica dies its session ends and the lock is free; another takes it at its next tick.
 */
export class AdvisoryLockLeadership implements Leadership {
  private client: pg.Client | undefined;
  private leading = false;

  constructor(
    private readonly databaseUrl: string,
    private readonly logger: Logger,
  ) {}

  async acquire(): Promise<boolean> {
    try {
      if (!this.client) {
        const client = new pg.Client({ connectionString: this.databaseUrl });
        // A broken session loses the lock with it: forget both and try again next tick.
        client.on("error", () => this.drop(client));
        client.on("end", () => this.drop(client));
        await client.connect();
        this.client = client;
      }
      if (this.leading) return true;
      const { rows } = await this.client.query<{ locked: boolean }>(
        "select pg_try_advisory_lock($1) as locked",
        [LOCK_KEY],
      );
      this.leading = rows[0]?.locked === true;
      if (this.leading) this.logger.info("this replica now runs the host monitor and reconciler");
      return this.leading;
    } catch (err) {
      this.logger.warn({ err }, "leadership check failed");
      if (this.client) this.drop(this.client);
      return false;
    }
  }

  async release(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.leading = false;
    await client?.end().catch(() => {});
  }

  private drop(client: pg.Client): void {
    if (this.client !== client) return;
    if (this.leading) this.logger.warn("lost the fleet duties (database session ended)");
    this.client = undefined;
    this.leading = false;
    client.end().catch(() => {});
  }
}

/** Advisory-lock leadership on PostgreSQL, sole leadership on SQLite. */
export function fleetLeadership(
  config: { databaseUrl: string | undefined },
  logger: Logger,
): Leadership {
  return config.databaseUrl ? new AdvisoryLockLeadership(config.databaseUrl, logger) : soleLeader;
}
