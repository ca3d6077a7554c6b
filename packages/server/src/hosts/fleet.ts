import type { Logger } from "pino";
import { type HostRecord, nowIso, type Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import { elapsed } from "../service/elapsed.js";
import type { AgentHost, PlacementRequest, SandboxPlacer } from "../service/sandbox-types.js";
import type { HostRegistry } from "./registry.js";
import { fits, type HostLoad, type Scheduler } from "./scheduler.js";
import { copySnapshot } from "./snapshot-transfer.js";

/** Whether a team may use a host: its own (BYOC) or a shared one. */
export function servesTeam(host: HostRecord, teamId: string): boolean {
  return host.teamId === null || host.teamId === teamId;
}

/**
 * Placement across the fleet: a create goes to a `ready` host the team may use — its own hosts
 * first, then shared ones — that runs the runtime and has room, chosen by the scheduler. A
 * create from a snapshot prefers a host that holds it; otherwise the snapshot is copied to the
 * chosen host first.
 */
export class Fleet implements SandboxPlacer {
  constructor(
    private readonly store: Store,
    readonly registry: HostRegistry,
    private readonly scheduler: Scheduler,
    private readonly logger: Logger,
  ) {}

  host(hostId: string): Promise<AgentHost> {
    return this.registry.get(hostId);
  }

  async place(teamId: string, request: PlacementRequest): Promise<AgentHost> {
    const hosts = (await this.store.hosts.list()).filter((h) => servesTeam(h, teamId));
    const committed = await this.store.sandboxes.committedByHost();
    const loadOf = (host: HostRecord): HostLoad => {
      const c = committed.get(host.id);
      return {
        host,
        committedVcpus: c?.vcpus ?? 0,
        committedMemoryMb: c?.memoryMb ?? 0,
        sandboxes: c?.count ?? 0,
      };
    };
    const runs = (h: HostRecord) => !request.runtime || h.runtimes.includes(request.runtime);

    let chosen: HostRecord;
    if (request.hostId !== undefined) {
      const pinned = hosts.find((h) => h.id === request.hostId);
      if (!pinned)
        throw new ServerError("not_found", `host ${JSON.stringify(request.hostId)} not found`);
      if (pinned.state !== "ready")
        throw new ServerError(
          "failed_precondition",
          `host ${pinned.id} is ${pinned.state}, not ready`,
        );
      if (!runs(pinned))
        throw new ServerError(
          "invalid_argument",
          `host ${pinned.id} does not run ${request.runtime} sandboxes`,
        );
      chosen = pinned;
    } else {
      const candidates = hosts
        .filter((h) => h.state === "ready" && runs(h))
        .map(loadOf)
        .filter((c) => fits(c, request));
      if (candidates.length === 0) {
        // More than any host has at all: no retry will help, so not a 503.
        const largest = Math.max(
          0,
          ...hosts
            .filter((h) => h.state === "ready" && runs(h))
            .map((h) => h.capacity.memory_mb ?? 0),
        );
        if (largest > 0 && request.memoryMb > largest) {
          throw new ServerError(
            "invalid_argument",
            `memory_mb: ${request.memoryMb} MiB is more than any host has (the largest: ${largest} MiB)`,
          );
        }
        throw new ServerError(
          "unavailable",
          hosts.some((h) => h.state === "ready")
            ? `no ready host has room for ${request.memoryMb} MiB${request.runtime ? ` of ${request.runtime}` : ""}; retry later`
            : "no ready host: register one (wrenn host add) or wait for one to return",
        );
      }
      const holders = request.snapshotId
        ? new Set(await this.store.hosts.templateCopies(request.snapshotId))
        : undefined;
      const pick = (pool: HostLoad[]) => {
        const own = pool.filter((c) => c.host.teamId === teamId);
        return this.scheduler.pick(own.length > 0 ? own : pool, request);
      };
      const withCopy = holders ? candidates.filter((c) => holders.has(c.host.id)) : [];
      chosen = (pick(withCopy.length > 0 ? withCopy : candidates) as HostLoad).host;
    }
    const agent = this.registry.connect(chosen);
    if (request.snapshotId) await this.ensureSnapshot(request.snapshotId, agent);
    return agent;
  }

  /** Copies the snapshot to `target` unless it holds one already, after the ones it stacks on. */
  private async ensureSnapshot(snapshotId: string, target: AgentHost): Promise<void> {
    const holders = await this.store.hosts.templateCopies(snapshotId);
    if (holders.includes(target.hostId)) return;
    const parent = await this.store.templates.parentOf(snapshotId);
    if (parent) await this.ensureSnapshot(parent, target);
    let lastError: unknown;
    for (const sourceId of holders) {
      const source = await this.store.hosts.get(sourceId);
      if (!source || (source.state !== "ready" && source.state !== "draining")) continue;
      const started = performance.now();
      try {
        const bytes = await copySnapshot(
          this.registry.connect(source),
          target,
          snapshotId,
          (copied) =>
            this.logger.info(
              { op: "snapshot.copy", snapshotId, from: sourceId, to: target.hostId, bytes: copied },
              "copying snapshot",
            ),
        );
        await this.store.hosts.addTemplateCopy(snapshotId, target.hostId, nowIso());
        this.logger.info(
          {
            op: "snapshot.copy",
            snapshotId,
            from: sourceId,
            to: target.hostId,
            bytes,
            ms: elapsed(started),
          },
          "snapshot copied",
        );
        return;
      } catch (err) {
        lastError = err;
        this.logger.warn(
          { op: "snapshot.copy", snapshotId, from: sourceId, to: target.hostId, err },
          "copying snapshot failed",
        );
      }
    }
    throw lastError instanceof ServerError
      ? lastError
      : new ServerError(
          "unavailable",
          "no host holding this snapshot can be reached; retry later",
          {
            cause: lastError,
          },
        );
  }
}
