import type { Kysely, Migration } from "kysely";

/**
 * The KiB a row's own layer takes on a host, as the agent measured it when it froze the layer (a
 * built template's size is its row plus the build layers below it). KiB in an integer: both
 * dialects read it back as a number (Postgres bigints come back as strings) up to 2 TiB. Null for
 * rows made before.
 */
export const templateSize: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable("templates").addColumn("size_kib", "integer").execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.alterTable("templates").dropColumn("size_kib").execute();
  },
};
