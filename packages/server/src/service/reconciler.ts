import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { type HostRecord, isId, nowIso, type SandboxState, type Store } from "../db/index.js";
import { type Leadership, soleLeader } from "../hosts/leadership.js";
import type { HostRegistry } from "../hosts/registry.js";
import { type AgentHost, agentStates } from "./sandbox-types.js";

export const RECONCILE_INTERVAL_MS = 5_000;
/** A host silent this long is `unreachable` and its sandboxes `missing` (WRENN_HOST_STALE_SEC). */
export const DEFAULT_HOST_STALE_SEC = 90;
/** A pending row older than this with no sandbox on its host was a create that died half-way. */
const PENDING_GRACE_MS = 10 * 60_000;
/** A sandbox (or snapshot) on an agent with no row is destroyed once it is this old (a create in
 * flight has its row first, but clocks differ between hosts). WRENN_ORPHAN_GRACE_SEC. */
export const DEFAULT_ORPHAN_GRACE_SEC = 30;
/** One host's answer may take this long; a slow host does not hold up the others. */
const LIST_TIMEOUT_MS = 10_000;
/**
 * A build's result is promoted once its start command is checked (ready timeout ≤ 10 minutes):
 * one unpromoted this long was a build its server stopped in the middle of.
 */
const UNFINISHED_BUILD_GRACE_MS = 60 * 60_000;
const RECONCILED: readonly SandboxState[] = ["pending", "running", "paused", "missing", "error"];

export interface ReconcileReport {
  /** sandbox id → the state it was moved to. */
  changed: Record<string, SandboxState>;
  /** Hosts found silent this tick (now unreachable). */
  unreachable: string[];
  /** Sandboxes destroyed on agents because no live row claims them. */
  orphans: string[];
  /** False when another replica holds the duty (nothing was done). */
  leader: boolean;
  /** Stopped rows deleted past the retention. */
  pruned: number;
  /** Snapshots deleted on agents because no row claims them. */
  orphanSnapshots: string[];
  /** Rows of builds that never finished, deleted (their snapshots go as orphans). */
  unfinishedBuilds: string[];
}

export interface ReconcilerOptions {
  intervalMs?: number;
  staleSec?: number;
  /** Default: this process always leads (SQLite, one server per data dir). */
  leadership?: Leadership;
  /** `WRENN_RETENTION_DAYS`: stopped rows older than this are deleted; 0 or unset keeps them. */
  retentionDays?: number;
  /** How old a sandbox or snapshot no row claims must be before it is destroyed. */
  orphanGraceSec?: number;
}

/**
 * The fleet's periodic duty, run by one replica at a time: hosts silent past the stale window
 * become `unreachable` and their sandboxes `missing`; every answering host is compared with the
 * database — sandboxes the agent auto-paused become `paused`, ones it no longer has `stopped`,
 * missing ones it still has come back, and sandboxes no live row claims are destroyed. Every
 * write is a compare-and-set on the state read, so an API call made meanwhile is never
 * overwritten with stale news. One failing host never stops the others. Every replica, leading
 * or not, breaks off the calls it has under way to an unreachable host.
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private readonly intervalMs: number;
  private readonly staleMs: number;
  private readonly leadership: Leadership;
  private readonly retentionMs: number;
  private readonly orphanGraceMs: number;
  /** A local (embedded) host's creates run only in this process: a pending row from before this
   * process started, with nothing on its host, was a create that died with the last one. */
  private readonly startedAt = Date.now();

  constructor(
    private readonly store: Store,
    private readonly registry: HostRegistry,
    private readonly logger: Logger,
    options: ReconcilerOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? RECONCILE_INTERVAL_MS;
    this.staleMs = (options.staleSec ?? DEFAULT_HOST_STALE_SEC) * 1000;
    this.leadership = options.leadership ?? soleLeader;
    this.retentionMs = (options.retentionDays ?? 0) * 86_400_000;
    this.orphanGraceMs = (options.orphanGraceSec ?? DEFAULT_ORPHAN_GRACE_SEC) * 1000;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.running = this.tick().catch((err: unknown) =>
        this.logger.warn({ err }, "reconcile failed"),
      );
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Stops ticking, waits for a tick under way and gives up the duty. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    await this.leadership.release();
  }

  /** One pass (also callable directly, e.g. at start). */
  async tick(): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      changed: {},
      unreachable: [],
      orphans: [],
      leader: false,
      pruned: 0,
      orphanSnapshots: [],
      unfinishedBuilds: [],
    };
    report.leader = await this.leadership.acquire();
    if (report.leader) await this.markStale(report);
    const hosts = await this.store.hosts.list();
    // Whichever replica gave up on a host, the calls this one has under way to it fail now.
    for (const host of hosts) if (host.state === "unreachable") this.registry.cutOff(host.id);
    if (!report.leader) return report;
    // Before the hosts: their snapshots are then orphans this same tick.
    report.unfinishedBuilds = await this.store.templates.deleteUnfinishedBuilds(
      nowIso(new Date(Date.now() - UNFINISHED_BUILD_GRACE_MS)),
    );
    if (report.unfinishedBuilds.length > 0)
      this.logger.info(
        { op: "reconcile", templateIds: report.unfinishedBuilds },
        "deleted the results of builds that never finished",
      );
    for (const host of hosts) {
      if (host.state !== "ready" && host.state !== "draining") continue;
      try {
        await this.reconcileHost(host, this.registry.connect(host), report);
      } catch (err) {
        this.logger.warn({ op: "reconcile", hostId: host.id, err }, "reconciling a host failed");
      }
    }
    if (this.retentionMs > 0) {
      report.pruned = await this.store.sandboxes.pruneStopped(
        nowIso(new Date(Date.now() - this.retentionMs)),
      );
      if (report.pruned > 0)
        this.logger.info({ op: "reconcile", pruned: report.pruned }, "pruned stopped sandboxes");
    }
    return report;
  }

  private async markStale(report: ReconcileReport): Promise<void> {
    const before = nowIso(new Date(Date.now() - this.staleMs));
    for (const host of await this.store.hosts.listStale(before)) {
      if (this.registry.isLocal(host.id)) continue; // answers in-process; seen at each tick
      if (!(await this.store.hosts.transition(host.id, ["ready", "draining"], "unreachable")))
        continue;
      const missing = await this.store.sandboxes.markHostMissing(host.id, nowIso());
      report.unreachable.push(host.id);
      for (const id of missing) report.changed[id] = "missing";
      this.logger.warn(
        {
          op: "host.monitor",
          hostId: host.id,
          lastSeenAt: host.lastSeenAt,
          missing: missing.length,
        },
        "host unreachable: its sandboxes are missing until it returns",
      );
    }
  }

  private async reconcileHost(
    record: HostRecord,
    host: AgentHost,
    report: ReconcileReport,
  ): Promise<void> {
    const rows = await this.store.sandboxes.listByHost(host.hostId, RECONCILED);
    const answer = await host.client.listSandboxes({}, { timeoutMs: LIST_TIMEOUT_MS });
    if (this.registry.isLocal(record.id)) await this.store.hosts.touch(record.id, nowIso());
    const autoPaused = new Set(answer.autoPausedSandboxIds);
    const onAgent = new Map(answer.sandboxes.map((s) => [s.sandboxId, s]));
    const now = nowIso();
    for (const row of rows) {
      const sandbox = onAgent.get(row.id);
      let next: SandboxState;
      if (!sandbox) {
        const pendingSince = Date.parse(row.updatedAt);
        const diedWithLastProcess =
          this.registry.isLocal(record.id) && pendingSince < this.startedAt;
        if (
          row.state === "pending" &&
          !diedWithLastProcess &&
          Date.now() - pendingSince < PENDING_GRACE_MS
        )
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
      report.changed[row.id] = next;
      this.logger.info(
        {
          op: "sandbox.reconcile",
          sandboxId: row.id,
          hostId: host.hostId,
          from: row.state,
          to: next,
        },
        "sandbox state reconciled",
      );
    }
    const live = new Set(rows.map((r) => r.id));
    for (const sandbox of answer.sandboxes) {
      if (live.has(sandbox.sandboxId)) continue;
      const age = sandbox.createdAt ? Date.now() - timestampDate(sandbox.createdAt).getTime() : 0;
      const row = await this.store.sandboxes.getById(sandbox.sandboxId);
      // A row that became live meanwhile (or lives elsewhere) still claims it. A stopped row
      // (a create whose agent died before answering) means no create is in flight: no grace.
      if (row && row.state !== "stopped") continue;
      if (!row && age < this.orphanGraceMs) continue;
      await host.client.destroySandbox({ sandboxId: sandbox.sandboxId }).then(
        () => {
          report.orphans.push(sandbox.sandboxId);
          this.logger.info(
            { op: "sandbox.orphan", sandboxId: sandbox.sandboxId, hostId: host.hostId },
            "destroyed a sandbox no live row claims",
          );
        },
        (err: unknown) =>
          this.logger.warn(
            { op: "sandbox.orphan", sandboxId: sandbox.sandboxId, hostId: host.hostId, err },
            "destroying an orphan failed",
          ),
      );
    }
    await this.removeOrphanSnapshots(host, report);
  }

  /**
   * Snapshots the agent made for a create whose answer never reached the database (the server
   * or the agent died in between): named by a row id no row has, past the grace.
   */
  private async removeOrphanSnapshots(host: AgentHost, report: ReconcileReport): Promise<void> {
    const { snapshots } = await host.client.listSnapshots({}, { timeoutMs: LIST_TIMEOUT_MS });
    for (const snapshot of snapshots) {
      if (!isId(snapshot.name)) continue; // not made by a server
      const age = snapshot.createdAt ? Date.now() - timestampDate(snapshot.createdAt).getTime() : 0;
      if (age < this.orphanGraceMs || snapshot.sandboxCount > 0) continue;
      if (await this.store.templates.getById(snapshot.name)) continue;
      await host.client.deleteSnapshot({ name: snapshot.name }).then(
        () => {
          report.orphanSnapshots.push(snapshot.name);
          this.logger.info(
            { op: "snapshot.orphan", snapshotId: snapshot.name, hostId: host.hostId },
            "deleted a snapshot no row claims",
          );
        },
        (err: unknown) =>
          this.logger.warn(
            { op: "snapshot.orphan", snapshotId: snapshot.name, hostId: host.hostId, err },
            "deleting an orphan snapshot failed",
          ),
      );
    }
  }
}
