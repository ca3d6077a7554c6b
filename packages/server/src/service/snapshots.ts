import { timestampDate } from "@bufbuild/protobuf/wkt";
import { crashPoint } from "@wrenn/agent";
import type { Logger } from "pino";
import type { SandboxRecord } from "../db/index.js";
import {
  isId,
  isUniqueViolation,
  type NewTemplateRow,
  newId,
  nowIso,
  type Store,
  type TemplateRow,
} from "../db/index.js";
import { ServerError } from "../errors.js";
import { fromAgentError, isAgentNotFound } from "./agent-errors.js";
import { elapsed } from "./elapsed.js";
import { isSafeName } from "./names.js";
import type { SandboxPlacer } from "./sandbox-types.js";
import type { SandboxService } from "./sandboxes.js";
import type { LayerCache } from "./templates/layer-cache.js";

/** A row's name as the team knows it: without a version's or a build's suffix (`web@v1`). */
const shownName = (row: TemplateRow) => row.name.split("@")[0];

/**
 * Team snapshots: named templates made from a sandbox's filesystem. On the agent a snapshot is
 * named by the row id (agent names are global to the host); teams see their own names.
 */
export class SnapshotService {
  constructor(
    private readonly store: Store,
    private readonly sandboxes: SandboxService,
    private readonly placer: SandboxPlacer,
    /** The template build layer cache, whose layers on a snapshot go with it. */
    private readonly layers: LayerCache,
    private readonly logger: Logger,
  ) {}

  async create(teamId: string, sandboxId: string, name: string): Promise<TemplateRow> {
    const started = performance.now();
    const sandbox = isId(sandboxId) ? await this.store.sandboxes.get(teamId, sandboxId) : undefined;
    if (!sandbox || sandbox.state === "stopped") {
      throw new ServerError("not_found", `sandbox ${JSON.stringify(sandboxId)} not found`);
    }
    if (await this.store.templates.getByName(teamId, name)) {
      throw new ServerError("already_exists", `snapshot ${JSON.stringify(name)} already exists`);
    }
    const row = await this.capture(teamId, sandbox, { name, kind: "snapshot" });
    this.logger.info(
      { op: "snapshot.create", teamId, sandboxId, snapshotId: row.id, ms: elapsed(started) },
      "snapshot created",
    );
    return row;
  }

  /**
   * Freezes a sandbox's filesystem into a new row of the team's templates table (a snapshot, a
   * built template or a build layer). Whole or not at all: a row that cannot be written takes
   * the agent's copy back.
   */
  async capture(
    teamId: string,
    sandbox: SandboxRecord,
    fields: Pick<
      NewTemplateRow,
      "name" | "kind" | "version" | "cacheKey" | "config" | "buildLayers"
    > & {
      /** What it was made from, when the caller knows better than the agent (a build's FROM). */
      baseTemplate?: string;
    },
  ): Promise<TemplateRow> {
    const host = await this.sandboxes.hostOf(sandbox);
    const id = newId();
    const res = await host.client
      .createSnapshot({ sandboxId: sandbox.id, name: id })
      .catch((err: unknown) => {
        throw fromAgentError(err, "create snapshot");
      });
    crashPoint("server:snapshot:agent");
    const made = res.snapshot;
    const row: NewTemplateRow = {
      ...fields,
      id,
      // The sandbox stacks on the row it was made from: another host needs that one first.
      parentId: sandbox.snapshotId,
      teamId,
      sourceSandboxId: sandbox.id,
      hostId: sandbox.hostId,
      baseTemplate: fields.baseTemplate || made?.baseTemplate || sandbox.template,
      vcpus: made?.vcpus || sandbox.vcpus,
      memoryMb: made?.memoryMb || sandbox.memoryMb,
      diskSizeMb: made?.diskSizeMb || sandbox.diskSizeMb,
      createdAt: made?.createdAt ? nowIso(timestampDate(made.createdAt)) : nowIso(),
      sizeKib: made ? Math.ceil(Number(made.sizeBytes) / 1024) : null,
    };
    // A new layer counts as used now: the cache evicts the least recently used first.
    if (fields.kind === "layer") row.usedAt = row.createdAt;
    try {
      return await this.store.transaction(async (tx) => {
        const inserted = await tx.templates.insert(row);
        await tx.hosts.addTemplateCopy(id, host.hostId, inserted.createdAt);
        return inserted;
      });
    } catch (err) {
      // Lost a race for the name: take back what the agent made.
      await host.client.deleteSnapshot({ name: id }).catch(() => {});
      if (isUniqueViolation(err)) {
        throw new ServerError("already_exists", `${JSON.stringify(fields.name)} already exists`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  list(teamId: string): Promise<TemplateRow[]> {
    return this.store.templates.list(teamId);
  }

  /** By id, or else by name; fails with failed_precondition while sandboxes still use it. */
  async delete(teamId: string, idOrName: string): Promise<void> {
    const started = performance.now();
    const row =
      (isId(idOrName) ? await this.store.templates.get(teamId, idOrName) : undefined) ??
      (isSafeName(idOrName)
        ? await this.store.templates.getByName(teamId, idOrName, "snapshot")
        : undefined);
    if (row?.kind !== "snapshot")
      throw new ServerError("not_found", `snapshot ${JSON.stringify(idOrName)} not found`);
    await this.removeWhole([row]);
    this.logger.info(
      { op: "snapshot.delete", teamId, snapshotId: row.id, ms: elapsed(started) },
      "snapshot deleted",
    );
  }

  /**
   * Deletes a snapshot, or every version of a built template, whole or not at all: refused while
   * a sandbox of the team runs from one or a template or snapshot of the team was made from one
   * (the agent would refuse half-way, naming internal ids). The build layers cached on them go
   * too: only the cache can name them.
   */
  async removeWhole(rows: readonly TemplateRow[]): Promise<void> {
    const [first] = rows;
    if (!first) return;
    const what = `${first.kind} ${JSON.stringify(shownName(first))}`;
    const ids = new Set(rows.map((r) => r.id));
    const above = await this.store.templates.aboveEach(first.teamId, [...ids]);
    const made = new Set(
      [...above.values()]
        .flat()
        .filter((r) => r.kind !== "layer" && !ids.has(r.id))
        .map((r) => `${r.kind} ${JSON.stringify(shownName(r))}`),
    );
    if (made.size > 0) {
      throw new ServerError(
        "failed_precondition",
        `${what} is in use: ${[...made].join(", ")} ${made.size === 1 ? "was made from it; delete it" : "were made from it; delete them"} first`,
      );
    }
    const running = await this.store.sandboxes.startedFrom(first.teamId, [...ids]);
    if (running.length > 0) {
      throw new ServerError(
        "failed_precondition",
        `${what} is in use by sandbox(es) ${running.join(", ")}; destroy them first`,
      );
    }
    // A row stacked on another of them goes first: it has fewer rows above it.
    const order = [...rows].sort(
      (a, b) => (above.get(a.id)?.length ?? 0) - (above.get(b.id)?.length ?? 0),
    );
    for (const row of order) {
      await this.layers.dropLayersOn(row);
      // Read again, not from `above`: a build may have stacked a layer on it meanwhile.
      if ((await this.store.templates.above(row.teamId, row.id)).length > 0) {
        throw new ServerError(
          "failed_precondition",
          `${what} is in use by a running template build; retry once it ends`,
        );
      }
      await this.remove(row);
    }
  }

  /** Deletes a row of the templates table and every host's copy; in use → failed_precondition. */
  remove(row: TemplateRow): Promise<void> {
    return removeRow(this.store, this.placer, this.logger, row);
  }
}

/** SnapshotService.remove, for the layer cache (which the service is built with). */
export async function removeRow(
  store: Store,
  placer: SandboxPlacer,
  logger: Logger,
  row: TemplateRow,
): Promise<void> {
  // Every copy goes; a host that cannot be reached keeps its copy (logged), which nothing
  // can name once the row is gone.
  for (const hostId of await store.hosts.templateCopies(row.id)) {
    try {
      await (await placer.host(hostId)).client.deleteSnapshot({ name: row.id });
    } catch (err) {
      if (isAgentNotFound(err)) continue;
      const failed = fromAgentError(err, "delete snapshot");
      if (failed.code !== "unavailable" && failed.code !== "internal") throw failed;
      logger.warn(
        { op: "snapshot.delete", snapshotId: row.id, hostId, err },
        "could not delete a snapshot copy on an unreachable host",
      );
    }
  }
  await store.templates.delete(row.teamId, row.id);
}
