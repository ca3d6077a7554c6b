import type { TeamQuotaLimits } from "../config/index.js";
import { TEAM_QUOTA_NAMES } from "../config/index.js";
import { nowIso, type Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import type { UserPrincipal } from "./principals.js";
import { PLACEMENT_DEFAULTS, type SandboxAsk } from "./sandbox-types.js";

export type QuotaName = keyof TeamQuotaLimits;
/** Quotas on things held open (counted in this process, released when they end). */
export type StreamQuota = "exec_streams" | "file_watches";

function exceeded(name: QuotaName, used: number, ask: number, max: number): ServerError {
  return new ServerError(
    "permission_denied",
    `quota ${name}: the team uses ${used} of ${max} and this asks for ${ask} more`,
    { details: { limit: name, max, used } },
  );
}

/**
 * Per-team limits: WRENN_TEAM_* defaults, overridden per team by an admin (the operator's team).
 * Sandbox resources are counted from the database (every replica agrees); streams and watches
 * are held open on one replica and counted there.
 */
export class QuotaService {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly defaults: TeamQuotaLimits,
  ) {}

  async limits(teamId: string): Promise<TeamQuotaLimits> {
    return { ...this.defaults, ...(await this.store.quotas.get(teamId)) };
  }

  /**
   * Refuses a create that would take the team past a limit (permission_denied naming it).
   * `recorded`: the ask's own rows are already in the usage (checked again after they were
   * written, see SandboxService.admitted).
   */
  async admitSandbox(teamId: string, ask: SandboxAsk, recorded = false): Promise<void> {
    const [limits, counted] = await Promise.all([
      this.limits(teamId),
      this.store.quotas.usage(teamId, PLACEMENT_DEFAULTS),
    ]);
    const usage = recorded
      ? {
          running: counted.running - (ask.count ?? 1),
          vcpus: counted.vcpus - ask.vcpus,
          memoryMb: counted.memoryMb - ask.memoryMb,
          diskMb: counted.diskMb - ask.diskSizeMb,
        }
      : counted;
    const checks: [QuotaName, number, number][] = [
      ["running_sandboxes", usage.running, ask.count ?? 1],
      ["vcpus", usage.vcpus, ask.vcpus],
      ["memory_mb", usage.memoryMb, ask.memoryMb],
      ["disk_mb", usage.diskMb, ask.diskSizeMb],
    ];
    for (const [name, used, more] of checks) {
      if (used + more > limits[name]) throw exceeded(name, used, more, limits[name]);
    }
  }

  /** Holds one of the team's streams or watches; call the returned function when it ends. */
  async acquire(teamId: string, name: StreamQuota): Promise<() => void> {
    const key = `${teamId}:${name}`;
    const max = (await this.limits(teamId))[name];
    const used = this.open.get(key) ?? 0;
    if (used + 1 > max) throw exceeded(name, used, 1, max);
    this.open.set(key, used + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    };
  }

  /** An admin's override of some of a team's limits; the others keep the defaults. */
  async override(
    admin: UserPrincipal,
    teamId: string,
    limits: Partial<TeamQuotaLimits>,
  ): Promise<TeamQuotaLimits> {
    const team = await this.store.users.getTeam(admin.teamId);
    if (!team?.isAdmin)
      throw new ServerError("permission_denied", "only the operator's team can set quotas");
    if (!(await this.store.users.getTeam(teamId)))
      throw new ServerError("not_found", `team ${JSON.stringify(teamId)} not found`);
    const current = await this.store.quotas.get(teamId);
    const next: Record<string, number> = { ...current };
    for (const name of TEAM_QUOTA_NAMES) {
      const value = limits[name];
      if (value !== undefined) next[name] = value;
    }
    await this.store.quotas.set(teamId, next, nowIso());
    return this.limits(teamId);
  }
}
