import type { Kysely, Migration, MigrationProvider } from "kysely";

// One migration set for both dialects: only types both read back the same (text, integer).
// Names are snake_case because CamelCasePlugin leaves snake_case identifiers untouched.

const initial: Migration = {
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

/**
 * The fleet: hosts owned by a team (BYOC) or shared, one-time registration tokens, refresh-token
 * rotation, which hosts hold a copy of each snapshot, and the runtime of each sandbox.
 */
const fleet: Migration = {
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

// Issue #13: team invitations, revocable login tokens, WebSocket tickets, per-team quotas.
const hardening: Migration = {
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

/** How each host runs each runtime (microvm: "kvm" or "tcg"), as its agent found by trying. */
const runtimeDetails: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable("hosts").addColumn("runtime_details", "text").execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.alterTable("hosts").dropColumn("runtime_details").execute();
  },
};

/** Every migration, in order; the keys sort in the order they must run. */
export const migrations: Record<string, Migration> = {
  "0001_initial": initial,
  "0002_fleet": fleet,
  "0003_hardening": hardening,
  "0004_runtime_details": runtimeDetails,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
