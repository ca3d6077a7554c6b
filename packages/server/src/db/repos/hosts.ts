import type { HostRefreshTokenRow, HostRowRaw } from "../schema.js";
import type { Executor } from "./types.js";

export type HostState = "ready" | "draining" | "offline";

/** A host as the rest of the server sees it: JSON parsed. */
export interface HostRecord extends Omit<HostRowRaw, "runtimes" | "capacity" | "state"> {
  state: HostState;
  runtimes: string[];
  capacity: Record<string, number>;
}

/** Hosts (agents) and the refresh tokens they re-register with. */
export class HostsRepo {
  constructor(private readonly db: Executor) {}

  /** Inserts the host, or replaces what is known about it (an agent re-registering). */
  async upsert(host: HostRecord): Promise<HostRecord> {
    const row = toRow(host);
    await this.db
      .insertInto("hosts")
      .values(row)
      .onConflict((oc) =>
        oc.column("id").doUpdateSet({
          address: row.address,
          state: row.state,
          runtimes: row.runtimes,
          capacity: row.capacity,
          lastSeenAt: row.lastSeenAt,
        }),
      )
      .execute();
    return host;
  }

  async get(id: string): Promise<HostRecord | undefined> {
    const row = await this.db
      .selectFrom("hosts")
      .selectAll()
      .where("id", "=", id)
      .executeTakeFirst();
    return row && fromRow(row);
  }

  async list(): Promise<HostRecord[]> {
    const rows = await this.db
      .selectFrom("hosts")
      .selectAll()
      .orderBy("createdAt")
      .orderBy("id")
      .execute();
    return rows.map(fromRow);
  }

  async markSeen(id: string, state: HostState, at: string): Promise<void> {
    await this.db
      .updateTable("hosts")
      .set({ state, lastSeenAt: at })
      .where("id", "=", id)
      .execute();
  }

  async insertRefreshToken(token: HostRefreshTokenRow): Promise<void> {
    await this.db.insertInto("hostRefreshTokens").values(token).execute();
  }

  /** The token with this hash if it has not expired at `now`. */
  findRefreshToken(tokenHash: string, now: string): Promise<HostRefreshTokenRow | undefined> {
    return this.db
      .selectFrom("hostRefreshTokens")
      .selectAll()
      .where("tokenHash", "=", tokenHash)
      .where("expiresAt", ">", now)
      .executeTakeFirst();
  }

  async deleteRefreshTokens(hostId: string): Promise<void> {
    await this.db.deleteFrom("hostRefreshTokens").where("hostId", "=", hostId).execute();
  }
}

function toRow(host: HostRecord): HostRowRaw {
  return {
    ...host,
    runtimes: JSON.stringify(host.runtimes),
    capacity: JSON.stringify(host.capacity),
  };
}

function fromRow(row: HostRowRaw): HostRecord {
  return {
    ...row,
    state: row.state as HostState,
    runtimes: JSON.parse(row.runtimes) as string[],
    capacity: JSON.parse(row.capacity) as Record<string, number>,
  };
}
