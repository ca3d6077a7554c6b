import type { Kysely, Migration } from "kysely";

/** How each host runs each runtime (microvm: "kvm" or "tcg"), as its agent found by trying. */
export const runtimeDetails: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable("hosts").addColumn("runtime_details", "text").execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.alterTable("hosts").dropColumn("runtime_details").execute();
  },
};
