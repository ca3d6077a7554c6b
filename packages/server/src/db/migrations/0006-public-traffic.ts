import type { Kysely, Migration } from "kysely";

/**
 * Issue #14: per sandbox, whether its ports answer anyone (else only with its traffic token) and
 * whether traffic through the sandbox routes resumes it when paused. Integers: both dialects.
 */
export const publicTraffic: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .alterTable("sandboxes")
      .addColumn("public_traffic", "integer", (c) => c.notNull().defaultTo(1))
      .execute();
    await db.schema
      .alterTable("sandboxes")
      .addColumn("auto_resume", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.alterTable("sandboxes").dropColumn("auto_resume").execute();
    await db.schema.alterTable("sandboxes").dropColumn("public_traffic").execute();
  },
};
