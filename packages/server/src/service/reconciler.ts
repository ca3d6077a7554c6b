import type { Logger } from "pino";
import { nowIso, type SandboxState, type Store } from "../db/index.js";
import type { AgentHost } from "./sandboxes.js";
import { agentStates } from "./sandboxes.js";

export const RECONCILE_INTERVAL_MS = 5_000;
/** A pending row older than this with no sandbox on its host was a create that died half-way. */
const PENDING_GRACE_MS = 10 * 60_000;
const RECONCILED: readonly SandboxState[] = ["pending", "running", "paused", "error"];

export interface ReconcileReport {
  /** sandbox id → the state it was moved to. */
  changed: Record<string, SandboxState>;
}

/**
 * Keeps the database in step with what each agent reports: sandboxes the agent auto-paused
 * become `paused`, ones it no longer has become `stopped`. Every write is a compare-and-set on
 * the state read, so an API call made meanwhile is never overwritten with stale news.
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly hosts: () => readonly AgentHost[],
    private readonly logger: Logger,
    private readonly intervalMs = RECONCILE_INTERVAL_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.running = this.tick().catch((err: unknown) =>
        this.logger.warn({ err }, "reconcile failed"),
      );
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Stops ticking and waits for a tick under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One pass over every host (also callable directly, e.g. at start). */
  async tick(): Promise<ReconcileReport> {
    const changed: Record<string, SandboxState> = {};
    for (const host of this.hosts()) Object.assign(changed, await this.reconcileHost(host));
    return { changed };
  }

  private async reconcileHost(host: AgentHost): Promise<Record<string, SandboxState>> {
    const rows = await this.store.sandboxes.listByHost(host.hostId, RECONCILED);
    const report = await host.client.listSandboxes({});
    const autoPaused = new Set(report.autoPausedSandboxIds);
    const onAgent = new Map(report.sandboxes.map((s) => [s.sandboxId, s]));
    const now = nowIso();
    await this.store.hosts.markSeen(host.hostId, "ready", now);
    const changed: Record<string, SandboxState> = {};
    for (const row of rows) {
      const sandbox = onAgent.get(row.id);
      let next: SandboxState;
      if (!sandbox) {
        if (row.state === "pending" && Date.now() - Date.parse(row.updatedAt) < PENDING_GRACE_MS)
          continue; // a create still under way
        next = "stopped";
      } else {
        next = autoPaused.has(row.id) ? "paused" : agentStates[sandbox.state];
        if (next === "pending") continue;
      }
      if (next === row.state) continue;
      const applied = await this.store.sandboxes.transition(
        row.id,
        row.state,
        next === "stopped" ? { state: next, stoppedAt: now } : { state: next },
        now,
      );
      if (!applied) continue;
      changed[row.id] = next;
      this.logger.info(
        { op: "sandbox.reconcile", sandboxId: row.id, from: row.state, to: next },
        "sandbox state reconciled",
      );
    }
    return changed;
  }
}
