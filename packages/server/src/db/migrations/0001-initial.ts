import type { Kysely, Migration } from "kysely";

// One migration set for both dialects: only types both read back the same (text, integer).
// Names are snake_case because CamelCasePlugin leaves snake_case identifiers untouched.

export const initial: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable("users")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("email", "text", (c) => c.notNull().unique())
      .addColumn("password_hash", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("teams")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("users_teams")
      .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
      .addColumn("team_id", "text", (c) => c.notNull().references("teams.id").onDelete("cascade"))
      .addColumn("role", "text", (c) => c.notNull())
      .addColumn("is_default", "integer", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("users_teams_pk", ["user_id", "team_id"])
      .execute();
    await db.schema.createIndex("users_teams_team").on("users_teams").column("team_id").execute();

    await db.schema
      .createTable("team_api_keys")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("team_id", "text", (c) => c.notNull().references("teams.id").onDelete("cascade"))
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("key_hash", "text", (c) => c.notNull().unique())
      .addColumn("key_prefix", "text", (c) => c.notNull())
      .addColumn("created_by", "text", (c) => c.references("users.id").onDelete("set null"))
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("last_used_at", "text")
      .execute();
    await db.schema
      .createIndex("team_api_keys_team")
      .on("team_api_keys")
      .columns(["team_id", "created_at"])
      .execute();

    await db.schema
      .createTable("hosts")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("address", "text", (c) => c.notNull())
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("runtimes", "text", (c) => c.notNull())
      .addColumn("capacity", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("last_seen_at", "text")
      .execute();

    await db.schema
      .createTable("host_refresh_tokens")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("host_id", "text", (c) => c.notNull().references("hosts.id").onDelete("cascade"))
      .addColumn("token_hash", "text", (c) => c.notNull().unique())
      .addColumn("expires_at", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("templates")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("team_id", "text", (c) => c.notNull().references("teams.id").onDelete("cascade"))
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("source_sandbox_id", "text")
      .addColumn("host_id", "text", (c) => c.references("hosts.id").onDelete("set null"))
      .addColumn("base_template", "text", (c) => c.notNull())
      .addColumn("vcpus", "integer", (c) => c.notNull())
      .addColumn("memory_mb", "integer", (c) => c.notNull())
      .addColumn("disk_size_mb", "integer", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .addUniqueConstraint("templates_team_name", ["team_id", "name"])
      .execute();

    await db.schema
      .createTable("sandboxes")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("team_id", "text", (c) => c.notNull().references("teams.id").onDelete("cascade"))
      .addColumn("host_id", "text", (c) => c.references("hosts.id").onDelete("set null"))
      .addColumn("template", "text", (c) => c.notNull())
      .addColumn("snapshot_id", "text", (c) => c.references("templates.id").onDelete("set null"))
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("vcpus", "integer", (c) => c.notNull())
      .addColumn("memory_mb", "integer", (c) => c.notNull())
      .addColumn("disk_size_mb", "integer", (c) => c.notNull())
      .addColumn("timeout_sec", "integer", (c) => c.notNull())
      .addColumn("metadata", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("updated_at", "text", (c) => c.notNull())
      .addColumn("last_active_at", "text", (c) => c.notNull())
      .addColumn("stopped_at", "text")
      .execute();
    // The list query: one team, in creation order, optionally one state.
    await db.schema
      .createIndex("sandboxes_team_created")
      .on("sandboxes")
      .columns(["team_id", "created_at", "id"])
      .execute();
    await db.schema
      .createIndex("sandboxes_team_state")
      .on("sandboxes")
      .columns(["team_id", "state"])
      .execute();
  },

  async down(db: Kysely<unknown>) {
    for (const table of [
      "sandboxes",
      "templates",
      "host_refresh_tokens",
      "hosts",
      "team_api_keys",
      "users_teams",
      "teams",
      "users",
    ]) {
      await db.schema.dropTable(table).execute();
    }
  },
};
