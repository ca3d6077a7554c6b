import { timestampDate } from "@bufbuild/protobuf/wkt";
import { crashPoint } from "@wrenn/agent";
import type { Sandbox as AgentSandbox } from "@wrenn/proto/agent";
import type { Logger } from "pino";
import {
  isId,
  newId,
  nowIso,
  type Page,
  type SandboxNetwork,
  type SandboxPatch,
  type SandboxRecord,
  type SandboxState,
  type Store,
} from "../db/index.js";
import { ServerError } from "../errors.js";
import { fromAgentError, isAgentNotFound } from "./agent-errors.js";
import { destroyIfCallerLeft, refuseIfCallerLeft } from "./caller-left.js";
import { elapsed } from "./elapsed.js";
import { pendingRow, resolveStart } from "./sandbox-start.js";
import {
  type AgentHost,
  agentStates,
  type CreateSandboxInput,
  type ListSandboxesInput,
  PLACEMENT_DEFAULTS,
  type SandboxAsk,
  type SandboxDefaults,
  type SandboxPlacer,
} from "./sandbox-types.js";

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
/** Activity is recorded at most this often per sandbox: not a write and an RPC per request. */
export const ACTIVITY_GRANULARITY_MS = 1_000;

/**
 * Sandbox lifecycle for one team: the database is the state of record, the agent does the work.
 * Every call is team-scoped; another team's id answers not_found exactly like a missing one.
 */
export class SandboxService {
  /** Sandboxes whose activity is being recorded right now: concurrent requests record it once. */
  private readonly recording = new Set<string>();

  /** Checks a create against the team's rate limit and quotas before anything is made. */
  admission?: (teamId: string, ask: SandboxAsk) => Promise<void>;
  /**
   * The quotas again once the new sandboxes' rows are recorded (pending): creates running at
   * the same time each count the others' rows then, so a burst cannot pass a quota together.
   */
  admitted?: (teamId: string, ask: SandboxAsk) => Promise<void>;

  constructor(
    private readonly store: Store,
    private readonly placer: SandboxPlacer,
    private readonly defaults: SandboxDefaults,
    private readonly logger: Logger,
  ) {}

  /**
   * The agent of a sandbox's host. A `missing` sandbox's host stopped answering: 503
   * host_unreachable, which clients retry, until the host returns or the sandbox is killed.
   */
  async hostOf(record: SandboxRecord): Promise<AgentHost> {
    if (record.state === "missing") {
      throw new ServerError(
        "host_unreachable",
        `sandbox ${record.id} is on a host that stopped answering; retry later`,
      );
    }
    if (!record.hostId) {
      throw new ServerError("unavailable", `sandbox ${record.id} has no host`);
    }
    return this.placer.host(record.hostId);
  }

  /**
   * Makes a sandbox. `signal` is the caller's (its request, a build's cancel): once it fires
   * nothing more is started, the agent takes back a create under way, and a sandbox made
   * meanwhile is destroyed, since nobody will learn its id.
   */
  async create(
    teamId: string,
    input: CreateSandboxInput,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<SandboxRecord> {
    const started = performance.now();
    // Milliseconds since `started` at the end of each step, for the operation's log line.
    const steps: Record<string, number> = {};
    const mark = (step: string) => {
      steps[step] = elapsed(started);
    };
    const start = await resolveStart(this.store, teamId, input, this.defaults.template);
    const { template, snapshotId, vcpus, memoryMb, diskSizeMb } = start;
    mark("template");
    const ask: SandboxAsk = {
      vcpus: vcpus || PLACEMENT_DEFAULTS.vcpus,
      memoryMb: memoryMb || PLACEMENT_DEFAULTS.memoryMb,
      diskSizeMb,
    };
    await this.admission?.(teamId, ask);
    mark("admission");
    const host = await this.placer.place(teamId, {
      vcpus: ask.vcpus,
      memoryMb: ask.memoryMb,
      ...(input.hostId ? { hostId: input.hostId } : {}),
      ...(input.runtime ? { runtime: input.runtime } : {}),
      ...(snapshotId ? { snapshotId } : {}),
    });
    mark("placement");
    refuseIfCallerLeft(signal);
    const agent = host.client;
    const id = newId();
    // Recorded first as pending, so a create that dies half-way is visible to the reconciler.
    await this.store.sandboxes.insert(pendingRow(id, teamId, host.hostId, input, start));
    mark("row");
    await this.admitted?.(teamId, ask).catch(async (err: unknown) => {
      await this.store.sandboxes.delete(teamId, id);
      throw err;
    });
    crashPoint("server:create:row");
    let created: AgentSandbox | undefined;
    try {
      const res = await agent.createSandbox(
        {
          sandboxId: id,
          template,
          vcpus,
          memoryMb,
          diskSizeMb,
          timeoutSec: input.timeoutSec ?? 0,
          envs: input.envs ?? {},
          metadata: input.metadata ?? {},
          allowInternetAccess: input.allowInternetAccess ?? true,
          allowOut: input.allowOut ?? [],
          denyOut: input.denyOut ?? [],
          runtime: input.runtime ?? "",
        },
        { signal },
      );
      created = res.sandbox;
      if (!created) throw new ServerError("internal", "agent returned no sandbox");
      mark("agent");
      crashPoint("server:create:agent");
    } catch (err) {
      // Nothing half-made survives a failed create: the agent's part, then the row. When the
      // agent cannot be reached (it died mid-create), the row stays as `stopped`: that tells the
      // reconciler to destroy whatever the agent finished once it is back, without a grace.
      const cleaned = await agent.destroySandbox({ sandboxId: id }).then(
        () => true,
        (cleanupErr: unknown) => isAgentNotFound(cleanupErr),
      );
      if (cleaned) await this.store.sandboxes.delete(teamId, id);
      else await this.apply(teamId, id, { state: "stopped", stoppedAt: nowIso() });
      this.logger.warn(
        { op: "sandbox.create", teamId, sandboxId: id, err, ms: elapsed(started) },
        "create failed",
      );
      throw fromAgentError(err, "create sandbox");
    }
    const record = await this.apply(teamId, id, {
      ...this.patchFrom(created),
      ...(created.runtime ? { runtime: created.runtime } : {}),
    });
    this.logger.info(
      {
        op: "sandbox.create",
        teamId,
        sandboxId: id,
        hostId: host.hostId,
        ms: elapsed(started),
        steps,
      },
      "sandbox created",
    );
    await destroyIfCallerLeft(signal, [id], (left) => this.destroy(teamId, left), this.logger);
    return record;
  }

  async list(teamId: string, input: ListSandboxesInput = {}): Promise<Page<SandboxRecord>> {
    const limit = input.limit ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new ServerError(
        "invalid_argument",
        `limit: must be an integer in [1, ${MAX_PAGE_SIZE}]`,
      );
    }
    return this.store.sandboxes.list({
      teamId,
      limit,
      ...(input.states ? { states: input.states } : {}),
      ...(input.metadata ? { metadata: input.metadata } : {}),
      ...(input.cursor ? { cursor: input.cursor } : {}),
    });
  }

  async get(teamId: string, id: string): Promise<SandboxRecord> {
    const record = isId(id) ? await this.store.sandboxes.get(teamId, id) : undefined;
    if (!record) throw new ServerError("not_found", `sandbox ${JSON.stringify(id)} not found`);
    return record;
  }

  /**
   * A sandbox by id whatever its team, for routes that authenticate per sandbox rather than per
   * team (E2B's envd traffic and published ports, see api/e2b). Destroyed ones are not found.
   */
  async findLive(id: string): Promise<SandboxRecord | undefined> {
    const record = isId(id) ? await this.store.sandboxes.getById(id) : undefined;
    return record && record.state !== "stopped" ? record : undefined;
  }

  /** Removes the sandbox from its host; the row stays, as `stopped`. */
  async destroy(teamId: string, id: string): Promise<void> {
    const started = performance.now();
    const record = await this.live(teamId, id);
    // A missing sandbox is only marked stopped: when its host returns, the reconciler destroys
    // what is left of it there.
    if (record.state !== "missing") {
      try {
        await (await this.hostOf(record)).client.destroySandbox({ sandboxId: record.id });
        crashPoint("server:destroy:agent");
      } catch (err) {
        if (!isAgentNotFound(err)) throw fromAgentError(err, "destroy sandbox");
      }
    }
    const now = nowIso();
    await this.apply(teamId, id, { state: "stopped", stoppedAt: now }, now);
    this.logger.info(
      { op: "sandbox.destroy", teamId, sandboxId: id, ms: elapsed(started) },
      "sandbox destroyed",
    );
  }

  /** Freezes a running sandbox; pausing a paused one is a no-op. */
  async pause(teamId: string, id: string): Promise<SandboxRecord> {
    const started = performance.now();
    const record = await this.live(teamId, id);
    if (record.state === "paused") return record;
    this.require(record, "running", "pause");
    const host = await this.hostOf(record);
    const res = await host.client.pauseSandbox({ sandboxId: id }).catch((err: unknown) => {
      throw fromAgentError(err, "pause sandbox");
    });
    crashPoint("server:pause:agent");
    const updated = await this.apply(teamId, id, this.patchFrom(res.sandbox, { state: "paused" }));
    this.logger.info(
      { op: "sandbox.pause", teamId, sandboxId: id, ms: elapsed(started) },
      "sandbox paused",
    );
    return updated;
  }

  /** Thaws a paused sandbox (optionally with a new timeout); resuming a running one is a no-op. */
  async resume(
    teamId: string,
    id: string,
    options: { timeoutSec?: number } = {},
  ): Promise<SandboxRecord> {
    const started = performance.now();
    const record = await this.live(teamId, id);
    if (record.state === "running" && options.timeoutSec === undefined) return record;
    if (record.state === "running")
      return this.setTimeout(teamId, id, options.timeoutSec ?? record.timeoutSec);
    const host = await this.hostOf(record);
    this.require(record, "paused", "resume");
    const res = await host.client
      .resumeSandbox({
        sandboxId: id,
        // The TTL survives pause/resume: send the stored one unless the caller sets another.
        timeoutSec: options.timeoutSec ?? record.timeoutSec,
      })
      .catch((err: unknown) => {
        throw fromAgentError(err, "resume sandbox");
      });
    crashPoint("server:resume:agent");
    const updated = await this.apply(teamId, id, this.patchFrom(res.sandbox, { state: "running" }));
    this.logger.info(
      { op: "sandbox.resume", teamId, sandboxId: id, ms: elapsed(started) },
      "sandbox resumed",
    );
    return updated;
  }

  /** Counts as activity: resets the agent's inactivity timer and `last_active_at`. */
  async ping(teamId: string, id: string): Promise<SandboxRecord> {
    const record = await this.live(teamId, id);
    const host = await this.hostOf(record);
    this.require(record, "running", "ping");
    const res = await host.client.pingSandbox({ sandboxId: id }).catch((err: unknown) => {
      throw fromAgentError(err, "ping sandbox");
    });
    const lastActiveAt = res.lastActiveAt ? nowIso(timestampDate(res.lastActiveAt)) : nowIso();
    return this.apply(teamId, id, { lastActiveAt });
  }

  async setTimeout(teamId: string, id: string, timeoutSec: number): Promise<SandboxRecord> {
    const record = await this.live(teamId, id);
    const host = await this.hostOf(record);
    if (record.state !== "running" && record.state !== "paused") {
      throw new ServerError(
        "failed_precondition",
        `cannot set the timeout of sandbox ${id}: it is ${record.state}, not running or paused`,
      );
    }
    const res = await host.client
      .setSandboxTimeout({ sandboxId: id, timeoutSec })
      .catch((err: unknown) => {
        throw fromAgentError(err, "set sandbox timeout");
      });
    return this.apply(teamId, id, this.patchFrom(res.sandbox, { timeoutSec }));
  }

  /** Replaces a running or paused sandbox's internet access and egress rules, live. */
  async setNetwork(teamId: string, id: string, network: SandboxNetwork): Promise<SandboxRecord> {
    const record = await this.live(teamId, id);
    const host = await this.hostOf(record);
    if (record.state !== "running" && record.state !== "paused") {
      throw new ServerError(
        "failed_precondition",
        `cannot set the network of sandbox ${id}: it is ${record.state}, not running or paused`,
      );
    }
    const started = performance.now();
    const res = await host.client
      .setSandboxNetwork({ sandboxId: id, ...network })
      .catch((err: unknown) => {
        throw fromAgentError(err, "set sandbox network");
      });
    await this.store.sandboxes.setNetwork(teamId, id, network, nowIso());
    this.logger.info(
      { op: "sandbox.network", teamId, sandboxId: id, ms: elapsed(started) },
      "sandbox network set",
    );
    return this.apply(teamId, id, this.patchFrom(res.sandbox));
  }

  /**
   * The host of a running sandbox of the team, for exec, file, process and stream traffic
   * (paused: refused). Such use counts as activity (see `recordActivity`) unless `activity` is
   * false: reads that only observe the sandbox (metrics) must not keep it from auto-pausing.
   */
  async reachable(
    teamId: string,
    id: string,
    { activity = true }: { activity?: boolean } = {},
  ): Promise<AgentHost> {
    const record = await this.live(teamId, id);
    const host = await this.hostOf(record);
    if (record.state !== "running") {
      throw new ServerError(
        "failed_precondition",
        `sandbox ${id} is ${record.state}, not running${record.state === "paused" ? ": resume it first" : ""}`,
      );
    }
    if (activity) await this.recordActivity(record, host);
    return host;
  }

  /**
   * Resets the agent's inactivity timer (as `ping` does) and `last_active_at`, at most once per
   * `ACTIVITY_GRANULARITY_MS` per sandbox. Best effort: the request it rides on goes ahead even
   * when recording fails (the agent's proxy also counts the traffic itself).
   */
  private async recordActivity(record: SandboxRecord, host: AgentHost): Promise<void> {
    const now = Date.now();
    if (
      now - Date.parse(record.lastActiveAt) < ACTIVITY_GRANULARITY_MS ||
      this.recording.has(record.id)
    )
      return;
    this.recording.add(record.id);
    try {
      const res = await host.client.pingSandbox({ sandboxId: record.id });
      const at = res.lastActiveAt ? timestampDate(res.lastActiveAt) : new Date(now);
      await this.store.sandboxes.touch(record.id, nowIso(at));
    } catch (err) {
      this.logger.warn(
        { op: "sandbox.activity", sandboxId: record.id, err },
        "recording activity failed",
      );
    } finally {
      this.recording.delete(record.id);
    }
  }

  /** A sandbox that has not been destroyed; stopped ones are gone as far as operations go. */
  private async live(teamId: string, id: string): Promise<SandboxRecord> {
    const record = await this.get(teamId, id);
    if (record.state === "stopped") {
      throw new ServerError("not_found", `sandbox ${JSON.stringify(id)} was destroyed`);
    }
    return record;
  }

  private require(record: SandboxRecord, state: SandboxState, action: string): void {
    if (record.state !== state) {
      throw new ServerError(
        "failed_precondition",
        `cannot ${action} sandbox ${record.id}: it is ${record.state}, not ${state}`,
      );
    }
  }

  /** What the agent reports, as a patch of the row (the agent knows the real limits it applied). */
  patchFrom(sandbox: AgentSandbox | undefined, fallback: SandboxPatch = {}): SandboxPatch {
    if (!sandbox) return fallback;
    return {
      state: agentStates[sandbox.state],
      vcpus: sandbox.vcpus,
      memoryMb: sandbox.memoryMb,
      diskSizeMb: sandbox.diskSizeMb,
      timeoutSec: sandbox.timeoutSec,
      ...(sandbox.lastActiveAt
        ? { lastActiveAt: nowIso(timestampDate(sandbox.lastActiveAt)) }
        : {}),
    };
  }

  private async apply(
    teamId: string,
    id: string,
    patch: SandboxPatch,
    at = nowIso(),
  ): Promise<SandboxRecord> {
    const updated = await this.store.sandboxes.update(teamId, id, patch, at);
    // Only a concurrent delete of the row gets here.
    if (!updated) throw new ServerError("not_found", `sandbox ${JSON.stringify(id)} not found`);
    return updated;
  }
}
