import { type Kysely, type Migration, sql } from "kysely";

/**
 * The build layer cache is bounded (least recently used layers go first, sized by 0008's
 * `size_kib`): `used_at` is when a build last made or reused a layer. `build_layers` (JSON array
 * of row ids) on a built template lists the layers its build went through, so deleting it can
 * take the ones only it used.
 */
export const layerCache: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable("templates").addColumn("used_at", "text").execute();
    await db.schema.alterTable("templates").addColumn("build_layers", "text").execute();
    // Layers cached before this count as last used when they were made.
    await sql`update templates set used_at = created_at where kind = 'layer'`.execute(db);
  },
  async down(db: Kysely<unknown>) {
    for (const column of ["build_layers", "used_at"]) {
      await db.schema.alterTable("templates").dropColumn(column).execute();
    }
  },
};
