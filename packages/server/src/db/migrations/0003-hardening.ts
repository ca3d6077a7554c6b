import type { Kysely, Migration } from "kysely";

// Issue #13: team invitations, revocable login tokens, WebSocket tickets, per-team quotas.
export const hardening: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable("team_invites")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("team_id", "text", (c) => c.notNull().references("teams.id").onDelete("cascade"))
      .addColumn("token_hash", "text", (c) => c.notNull().unique())
      .addColumn("created_by", "text", (c) => c.references("users.id").onDelete("set null"))
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("expires_at", "text", (c) => c.notNull())
      .addColumn("used_at", "text")
      .execute();
    // Login tokens issued before this instant are refused (logout, password change).
    await db.schema.alterTable("users").addColumn("tokens_valid_after", "text").execute();
    await db.schema
      .createTable("ws_tickets")
      .addColumn("ticket_hash", "text", (c) => c.primaryKey())
      .addColumn("team_id", "text", (c) => c.notNull().references("teams.id").onDelete("cascade"))
      .addColumn("sandbox_id", "text", (c) => c.notNull())
      .addColumn("expires_at", "text", (c) => c.notNull())
      .execute();
    await db.schema
      .createTable("team_quotas")
      .addColumn("team_id", "text", (c) =>
        c.primaryKey().references("teams.id").onDelete("cascade"),
      )
      .addColumn("limits", "text", (c) => c.notNull())
      .addColumn("updated_at", "text", (c) => c.notNull())
      .execute();
  },

  async down(db: Kysely<unknown>) {
    await db.schema.dropTable("team_quotas").execute();
    await db.schema.dropTable("ws_tickets").execute();
    await db.schema.alterTable("users").dropColumn("tokens_valid_after").execute();
    await db.schema.dropTable("team_invites").execute();
  },
};
