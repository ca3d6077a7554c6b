import type { Kysely, Migration } from "kysely";

/**
 * Templates built from a recipe share the snapshots' table (agents copy and delete them the same
 * way): `kind` tells a snapshot from a built template (`template`, versioned; older versions are
 * renamed `name@vN`) and from a cached build layer (`layer`, found by its `cache_key`).
 * `config` is a built template's JSON (start command, defaults) as the build wrote it;
 * `parent_id` the row it stacks on, which another host must hold before it can take a copy.
 */
export const templates: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .alterTable("templates")
      .addColumn("kind", "text", (c) => c.notNull().defaultTo("snapshot"))
      .execute();
    await db.schema
      .alterTable("templates")
      .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
      .execute();
    await db.schema.alterTable("templates").addColumn("cache_key", "text").execute();
    await db.schema.alterTable("templates").addColumn("config", "text").execute();
    await db.schema.alterTable("templates").addColumn("parent_id", "text").execute();
    await db.schema
      .createIndex("templates_team_cache_key")
      .on("templates")
      .columns(["team_id", "cache_key"])
      .execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropIndex("templates_team_cache_key").execute();
    for (const column of ["parent_id", "config", "cache_key", "version", "kind"]) {
      await db.schema.alterTable("templates").dropColumn(column).execute();
    }
  },
};
