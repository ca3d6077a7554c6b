import type { Executor } from "./types.js";

/** Per-team quota overrides set by an admin, as a JSON object of limit name to number. */
export class QuotasRepo {
  constructor(private readonly db: Executor) {}

  async get(teamId: string): Promise<Record<string, number>> {
    const row = await this.db
      .selectFrom("teamQuotas")
      .select("limits")
      .where("teamId", "=", teamId)
      .executeTakeFirst();
    return row ? (JSON.parse(row.limits) as Record<string, number>) : {};
  }

  async set(teamId: string, limits: Record<string, number>, now: string): Promise<void> {
    const values = { teamId, limits: JSON.stringify(limits), updatedAt: now };
    await this.db
      .insertInto("teamQuotas")
      .values(values)
      .onConflict((oc) =>
        oc.column("teamId").doUpdateSet({ limits: values.limits, updatedAt: now }),
      )
      .execute();
  }
}
