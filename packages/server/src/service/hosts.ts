import type { Logger } from "pino";
import { type HostRecord, nowIso, type Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import { servesTeam } from "../hosts/fleet.js";
import type { HostRegistry } from "../hosts/registry.js";
import { isAgentNotFound } from "./agent-errors.js";

/** States in which a sandbox still occupies its host. */
const ON_HOST = ["pending", "running", "paused", "missing"] as const;

/** A host as one team may see it: shared hosts' address and capacity only for the operator. */
export interface HostView {
  host: HostRecord;
  /** Whether address and capacity may be shown. */
  detailed: boolean;
  usage: { sandboxes: number; vcpus: number; memory_mb: number };
}

/** The hosts sandboxes run on: what a team may see of them, draining and removing them. */
export class HostService {
  constructor(
    private readonly store: Store,
    private readonly registry: HostRegistry,
    private readonly isAdmin: (teamId: string) => Promise<boolean>,
    private readonly logger: Logger,
  ) {}

  /** The team's own hosts and the shared ones. */
  async list(teamId: string): Promise<HostView[]> {
    const [hosts, admin, committed] = await Promise.all([
      this.store.hosts.list(),
      this.isAdmin(teamId),
      this.store.sandboxes.committedByHost(),
    ]);
    return hosts
      .filter((h) => servesTeam(h, teamId))
      .map((host) => {
        const c = committed.get(host.id);
        return {
          host,
          detailed: admin || host.teamId === teamId,
          usage: { sandboxes: c?.count ?? 0, vcpus: c?.vcpus ?? 0, memory_mb: c?.memoryMb ?? 0 },
        };
      });
  }

  /** Another team's host answers not_found, exactly like a missing one. */
  async get(teamId: string, id: string): Promise<HostView> {
    const view = (await this.list(teamId)).find((v) => v.host.id === id);
    if (!view) throw new ServerError("not_found", `host ${JSON.stringify(id)} not found`);
    return view;
  }

  /** No new sandboxes go there; those on it keep running. */
  async drain(teamId: string, id: string): Promise<HostView> {
    const view = await this.manageable(teamId, id);
    if (view.host.state !== "draining") {
      await this.store.hosts.transition(id, ["ready", "unreachable", "offline"], "draining");
      this.logger.info({ op: "host.drain", hostId: id, teamId }, "host draining");
    }
    return this.get(teamId, id);
  }

  /**
   * Removes the host and revokes its credentials. While sandboxes remain on it: conflict, with
   * their ids; `force` destroys them where the host answers and marks them stopped.
   */
  async remove(teamId: string, id: string, force: boolean): Promise<void> {
    const { host } = await this.manageable(teamId, id);
    const sandboxes = await this.store.sandboxes.listByHost(id, ON_HOST);
    if (sandboxes.length > 0 && !force) {
      throw new ServerError(
        "conflict",
        `host ${id} still has ${sandboxes.length} sandbox(es): kill them, or remove it with force`,
        { details: { sandboxes: sandboxes.map((s) => s.id) } },
      );
    }
    if (this.registry.isLocal(id)) {
      throw new ServerError(
        "failed_precondition",
        "the embedded agent of this server cannot be removed; stop the server instead",
      );
    }
    const agent = sandboxes.length > 0 ? this.registry.connect(host) : undefined;
    for (const sandbox of sandboxes) {
      try {
        await agent?.client.destroySandbox({ sandboxId: sandbox.id }, { timeoutMs: 10_000 });
      } catch (err) {
        if (!isAgentNotFound(err)) {
          this.logger.warn(
            { op: "host.remove", hostId: id, sandboxId: sandbox.id, err },
            "could not destroy sandbox on the removed host; marked stopped",
          );
        }
      }
    }
    await this.store.transaction(async (tx) => {
      await tx.sandboxes.markHostStopped(id, nowIso());
      await tx.hosts.deleteRefreshTokens(id);
      await tx.hosts.delete(id);
    });
    this.registry.forget(id);
    this.logger.info(
      { op: "host.remove", hostId: id, teamId, sandboxes: sandboxes.length },
      "host removed",
    );
  }

  /** A team manages its own hosts; the operator's team manages shared ones too. */
  private async manageable(teamId: string, id: string): Promise<HostView> {
    const view = await this.get(teamId, id);
    if (view.host.teamId === null && !(await this.isAdmin(teamId))) {
      throw new ServerError("permission_denied", "only the operator's team manages shared hosts");
    }
    return view;
  }
}
