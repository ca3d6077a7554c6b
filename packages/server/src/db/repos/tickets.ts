import type { Executor } from "./types.js";

/** Short-lived single-use WebSocket tickets, by the hash of the ticket. */
export class TicketsRepo {
  constructor(private readonly db: Executor) {}

  async insert(ticketHash: string, teamId: string, sandboxId: string, expiresAt: string) {
    await this.db
      .insertInto("wsTickets")
      .values({ ticketHash, teamId, sandboxId, expiresAt })
      .execute();
  }

  /** Deletes the ticket and returns its team if it was still valid for the sandbox. */
  async redeem(ticketHash: string, sandboxId: string, now: string): Promise<string | undefined> {
    const row = await this.db
      .deleteFrom("wsTickets")
      .where("ticketHash", "=", ticketHash)
      .returning(["teamId", "sandboxId", "expiresAt"])
      .executeTakeFirst();
    // Expired tickets of anyone go with each redemption: the table stays small.
    await this.db.deleteFrom("wsTickets").where("expiresAt", "<=", now).execute();
    if (!row || row.sandboxId !== sandboxId || row.expiresAt <= now) return undefined;
    return row.teamId;
  }
}
