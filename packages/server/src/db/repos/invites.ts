import type { Selectable } from "kysely";
import type { TeamInvitesTable } from "../schema.js";
import type { Executor } from "./types.js";

export type TeamInviteRow = Selectable<TeamInvitesTable>;

/** Single-use team invitations, looked up by the hash of their token. */
export class InvitesRepo {
  constructor(private readonly db: Executor) {}

  async insert(invite: TeamInviteRow): Promise<void> {
    await this.db.insertInto("teamInvites").values(invite).execute();
  }

  /** The team's unused, unexpired invites, oldest first. */
  pending(teamId: string, now: string): Promise<TeamInviteRow[]> {
    return this.db
      .selectFrom("teamInvites")
      .selectAll()
      .where("teamId", "=", teamId)
      .where("usedAt", "is", null)
      .where("expiresAt", ">", now)
      .orderBy("createdAt", "asc")
      .orderBy("id", "asc")
      .execute();
  }

  /** Deletes one unused invite of one team; false when that team has no such invite. */
  async revoke(teamId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom("teamInvites")
      .where("teamId", "=", teamId)
      .where("id", "=", id)
      .where("usedAt", "is", null)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** Marks an unused, unexpired invite used and returns it; undefined if there is none. */
  async redeem(tokenHash: string, now: string): Promise<TeamInviteRow | undefined> {
    const invite = await this.db
      .selectFrom("teamInvites")
      .selectAll()
      .where("tokenHash", "=", tokenHash)
      .where("usedAt", "is", null)
      .where("expiresAt", ">", now)
      .executeTakeFirst();
    if (!invite) return undefined;
    // Conditional on still being unused: two signups with one token cannot both win.
    const taken = await this.db
      .updateTable("teamInvites")
      .set({ usedAt: now })
      .where("id", "=", invite.id)
      .where("usedAt", "is", null)
      .executeTakeFirst();
    return taken.numUpdatedRows > 0n ? invite : undefined;
  }
}
