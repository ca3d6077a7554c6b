import { type Kysely, type Migration, sql } from "kysely";

/**
 * The build layer cache is bounded (least recently used layers go first): `used_at` is when a
 * build last made or reused a layer, `size_kib` what its copy takes on a host (KiB: a 32-bit
 * integer on Postgres still holds terabytes). `build_layers` (JSON array of row ids) on a built
 * template lists the layers its build went through, so deleting it can take the ones only it used.
 */
export const layerCache: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .alterTable("templates")
      .addColumn("size_kib", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable("templates").addColumn("used_at", "text").execute();
    await db.schema.alterTable("templates").addColumn("build_layers", "text").execute();
    // Layers cached before this count as last used when they were made.
    await sql`update templates set used_at = created_at where kind = 'layer'`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    for (const column of ["build_layers", "used_at", "size_kib"]) {
      await db.schema.alterTable("templates").dropColumn(column).execute();
    }
  },
};
