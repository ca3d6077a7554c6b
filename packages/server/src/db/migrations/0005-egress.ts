import type { Kysely, Migration } from "kysely";

/**
 * A sandbox's network policy as JSON text, `{"allow_internet_access", "allow_out", "deny_out"}`;
 * null for sandboxes from before it (internet access on, no rules).
 */
export const egress: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable("sandboxes").addColumn("network", "text").execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.alterTable("sandboxes").dropColumn("network").execute();
  },
};
