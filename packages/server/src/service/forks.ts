import type { Logger } from "pino";
import { newId, nowIso, type SandboxRecord, type Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import { fromAgentError } from "./agent-errors.js";
import { destroyIfCallerLeft, refuseIfCallerLeft } from "./caller-left.js";
import { elapsed } from "./elapsed.js";
import type { SandboxService } from "./sandboxes.js";

/** Most sandboxes one fork makes. */
export const MAX_FORKS = 10;

/** The metadata key naming the sandbox a fork was made from. */
export const FORKED_FROM = "forked_from";

export interface ForkOutcome {
  sandboxes: SandboxRecord[];
  /** How long the source stood still while its state was copied. */
  sourcePauseMs: number;
}

/**
 * Forks: new sandboxes of the team with a running sandbox's files (and, for microVMs, its memory
 * and processes) as they are now, on the source's host, with its template, runtime, resources
 * and metadata plus `forked_from`. The agent makes all of them or none.
 */
export class ForkService {
  constructor(
    private readonly store: Store,
    private readonly sandboxes: SandboxService,
    private readonly logger: Logger,
  ) {}

  /** `signal` is the caller's request: forks made after it was closed are destroyed. */
  async fork(
    teamId: string,
    id: string,
    count: number,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<ForkOutcome> {
    const started = performance.now();
    if (!Number.isInteger(count) || count < 1 || count > MAX_FORKS) {
      throw new ServerError("invalid_argument", `count: must be an integer in [1, ${MAX_FORKS}]`);
    }
    const source = await this.sandboxes.get(teamId, id);
    if (source.state === "stopped") {
      throw new ServerError("not_found", `sandbox ${JSON.stringify(id)} was destroyed`);
    }
    const host = await this.sandboxes.hostOf(source);
    if (source.state !== "running") {
      throw new ServerError(
        "failed_precondition",
        `cannot fork sandbox ${id}: it is ${source.state}, not running${source.state === "paused" ? ": resume it first" : ""}`,
      );
    }
    const ask = {
      vcpus: source.vcpus * count,
      memoryMb: source.memoryMb * count,
      diskSizeMb: source.diskSizeMb * count,
      count,
    };
    await this.sandboxes.admission?.(teamId, ask);
    const now = nowIso();
    const metadata = { ...source.metadata, [FORKED_FROM]: source.id };
    const rows: SandboxRecord[] = Array.from({ length: count }, () => ({
      ...source,
      id: newId(),
      state: "pending",
      metadata,
      createdAt: now,
      updatedAt: now,
      lastActiveAt: now,
      stoppedAt: null,
    }));
    refuseIfCallerLeft(signal);
    // Recorded first as pending, as creates are, so a fork that dies half-way is reconciled.
    for (const row of rows) await this.store.sandboxes.insert(row);
    await this.sandboxes.admitted?.(teamId, ask).catch(async (err: unknown) => {
      for (const row of rows) await this.store.sandboxes.delete(teamId, row.id);
      throw err;
    });
    let made: Awaited<ReturnType<typeof host.client.forkSandbox>>;
    try {
      made = await host.client.forkSandbox({
        sandboxId: source.id,
        forks: rows.map((row) => ({
          sandboxId: row.id,
          metadata,
          timeoutSec: source.timeoutSec,
        })),
      });
    } catch (err) {
      // The agent undid its part; the rows go too.
      for (const row of rows) await this.store.sandboxes.delete(teamId, row.id);
      this.logger.warn(
        { op: "sandbox.fork", teamId, sandboxId: id, count, err, ms: elapsed(started) },
        "fork failed",
      );
      throw fromAgentError(err, "fork sandbox");
    }
    const byId = new Map(made.sandboxes.map((s) => [s.sandboxId, s]));
    const sandboxes: SandboxRecord[] = [];
    for (const row of rows) {
      const patch = this.sandboxes.patchFrom(byId.get(row.id), { state: "running" });
      const updated = await this.store.sandboxes.update(teamId, row.id, patch, nowIso());
      if (!updated) throw new ServerError("not_found", `sandbox ${row.id} not found`);
      sandboxes.push(updated);
    }
    this.logger.info(
      {
        op: "sandbox.fork",
        teamId,
        sandboxId: id,
        forks: sandboxes.map((s) => s.id),
        sourcePauseMs: made.sourcePauseMs,
        ms: elapsed(started),
      },
      "sandbox forked",
    );
    await destroyIfCallerLeft(
      signal,
      sandboxes.map((s) => s.id),
      (left) => this.sandboxes.destroy(teamId, left),
      this.logger,
    );
    return { sandboxes, sourcePauseMs: made.sourcePauseMs };
  }
}
