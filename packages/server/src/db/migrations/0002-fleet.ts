import type { Kysely, Migration } from "kysely";

/**
 * The fleet: hosts owned by a team (BYOC) or shared, one-time registration tokens, refresh-token
 * rotation, which hosts hold a copy of each snapshot, and the runtime of each sandbox.
 */
export const fleet: Migration = {
  async up(db: Kysely<unknown>) {
    const hostColumns: [string, "text" | "integer"][] = [
      ["team_id", "text"],
      ["hostname", "text"],
      ["version", "text"],
      ["default_runtime", "text"],
      ["sandbox_cidr", "text"],
      ["instance_id", "text"],
      // The bearer the server presents to the agent, sealed with the server secret.
      ["agent_key", "text"],
      ["tls_cert", "text"],
      ["usage", "text"],
    ];
    for (const [name, type] of hostColumns) {
      await db.schema
        .alterTable("hosts")
        .addColumn(name, type, (c) =>
          name === "team_id" ? c.references("teams.id").onDelete("cascade") : c,
        )
        .execute();
    }
    await db.schema.createIndex("hosts_team").on("hosts").column("team_id").execute();

    await db.schema
      .createTable("host_registration_tokens")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("token_hash", "text", (c) => c.notNull().unique())
      .addColumn("team_id", "text", (c) => c.references("teams.id").onDelete("cascade"))
      .addColumn("created_by_team", "text", (c) =>
        c.notNull().references("teams.id").onDelete("cascade"),
      )
      .addColumn("expires_at", "text", (c) => c.notNull())
      .addColumn("used_at", "text")
      .addColumn("host_id", "text")
      .addColumn("created_at", "text", (c) => c.notNull())
      .execute();

    // Rotation: a token's successor, and when the successor was first used (then the parent
    // is revoked); presenting a parent whose successor was used is reuse.
    for (const name of ["parent_id", "successor_id", "activated_at"]) {
      await db.schema.alterTable("host_refresh_tokens").addColumn(name, "text").execute();
    }

    await db.schema
      .createTable("template_hosts")
      .addColumn("template_id", "text", (c) =>
        c.notNull().references("templates.id").onDelete("cascade"),
      )
      .addColumn("host_id", "text", (c) => c.notNull().references("hosts.id").onDelete("cascade"))
      .addColumn("created_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("template_hosts_pk", ["template_id", "host_id"])
      .execute();

    await db.schema
      .alterTable("sandboxes")
      .addColumn("runtime", "text", (c) => c.notNull().defaultTo("namespace"))
      .execute();
    await db.schema
      .createIndex("sandboxes_host_state")
      .on("sandboxes")
      .columns(["host_id", "state"])
      .execute();

    await db.schema
      .alterTable("teams")
      .addColumn("is_admin", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
  },

  async down(db: Kysely<unknown>) {
    await db.schema.dropTable("template_hosts").execute();
    await db.schema.dropTable("host_registration_tokens").execute();
    await db.schema.dropIndex("sandboxes_host_state").execute();
    await db.schema.dropIndex("hosts_team").execute();
    await db.schema.alterTable("sandboxes").dropColumn("runtime").execute();
    await db.schema.alterTable("teams").dropColumn("is_admin").execute();
    for (const name of ["parent_id", "successor_id", "activated_at"]) {
      await db.schema.alterTable("host_refresh_tokens").dropColumn(name).execute();
    }
    for (const name of [
      "team_id",
      "hostname",
      "version",
      "default_runtime",
      "sandbox_cidr",
      "instance_id",
      "agent_key",
      "tls_cert",
      "usage",
    ]) {
      await db.schema.alterTable("hosts").dropColumn(name).execute();
    }
  },
};
