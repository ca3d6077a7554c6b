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

  /**
   * What the team's sandboxes hold: running ones (pending or running) count against sandboxes,
   * vCPUs and memory; every sandbox not stopped keeps its disk.
   */
  /**
   * What the team's live sandboxes hold. A pending one that names no vCPUs or memory (the
   * agent's default, known once it is made) counts as `assumed`.
   */
  async usage(
    teamId: string,
    assumed: { vcpus: number; memoryMb: number },
  ): Promise<{ running: number; vcpus: number; memoryMb: number; diskMb: number }> {
    const rows = await this.db
      .selectFrom("sandboxes")
      .select(["state", "vcpus", "memoryMb", "diskSizeMb"])
      .where("teamId", "=", teamId)
      .where("state", "!=", "stopped")
      .execute();
    const usage = { running: 0, vcpus: 0, memoryMb: 0, diskMb: 0 };
    for (const row of rows) {
      usage.diskMb += row.diskSizeMb;
      if (row.state !== "pending" && row.state !== "running") continue;
      usage.running += 1;
      usage.vcpus += row.vcpus || assumed.vcpus;
      usage.memoryMb += row.memoryMb || assumed.memoryMb;
    }
    return usage;
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
