import type { Logger } from "pino";
import type { LayerCacheBudget } from "../../config/index.js";
import { nowIso, type Store, type TemplateRow } from "../../db/index.js";

/** The layers one build holds: the cache takes none of them until the build releases them. */
export type LayerHolds = Set<string>;

/** The ids in a built template's `build_layers` (none for rows from before it was kept). */
export function buildLayersOf(row: TemplateRow): string[] {
  if (!row.buildLayers) return [];
  const ids = JSON.parse(row.buildLayers) as unknown;
  return Array.isArray(ids) ? ids.filter((id): id is string => typeof id === "string") : [];
}

/**
 * The build layer cache, bounded: past its budget (layers and their size, every team together)
 * the least recently used layers go, but never one a row stacks on (a template, a snapshot or
 * another layer), a sandbox started from, or a running build of this server holds. Deleting a
 * template also takes the layers only its builds went through, and deleting a template or a
 * snapshot the layers builds from it left on it.
 */
export class LayerCache {
  /** Layers running builds hold (how many builds hold each). */
  private readonly held = new Map<string, number>();
  /** Layers being removed now: a build that looks one up takes it as a miss. */
  private readonly removing = new Set<string>();
  /** Evictions run one at a time. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Store,
    /** Deletes a row and every host's copy (SnapshotService.remove). */
    private readonly remove: (row: TemplateRow) => Promise<void>,
    private readonly budget: LayerCacheBudget,
    private readonly logger: Logger,
  ) {}

  /** The team's cached layer of `key`, held for the build and marked used; undefined on a miss. */
  async claim(teamId: string, key: string, holds: LayerHolds): Promise<TemplateRow | undefined> {
    const row = await this.store.templates.getLayer(teamId, key);
    if (!row || this.removing.has(row.id)) return undefined;
    this.hold(row.id, holds);
    await this.store.templates.touchLayer(row.id, nowIso());
    return row;
  }

  /** Holds `id` for a build (a layer it just made). */
  hold(id: string, holds: LayerHolds): void {
    if (holds.has(id)) return;
    holds.add(id);
    this.held.set(id, (this.held.get(id) ?? 0) + 1);
  }

  /** Lets go of what a build held. */
  release(holds: LayerHolds): void {
    for (const id of holds) {
      const n = (this.held.get(id) ?? 1) - 1;
      if (n > 0) this.held.set(id, n);
      else this.held.delete(id);
    }
    holds.clear();
  }

  /** Evicts the least recently used layers nothing stands on until the cache fits its budget. */
  trim(): Promise<void> {
    return this.serialize(async () => {
      const all = await this.store.templates.allLayers();
      let count = all.length;
      let kib = all.reduce((sum, l) => sum + (l.sizeKib ?? 0), 0);
      const over = () => count > this.budget.maxLayers || kib > this.budget.maxMb * 1024;
      // Taking a layer can leave the one it stacked on free: look again until nothing moves.
      for (let moved = true; moved && over(); ) {
        moved = false;
        for (const layer of await this.store.templates.evictableLayers()) {
          if (!over()) break;
          if (!(await this.evict(layer, "cache budget"))) continue;
          count--;
          kib -= layer.sizeKib ?? 0;
          moved = true;
        }
      }
    });
  }

  /**
   * After built templates of a team were deleted: removes the layers their builds went through
   * that no remaining template of the team went through and nothing stands on.
   */
  dropLayersOf(teamId: string, deleted: readonly TemplateRow[]): Promise<void> {
    return this.serialize(async () => {
      const candidates = new Set(deleted.flatMap(buildLayersOf));
      for (const row of await this.store.templates.list(teamId, "template")) {
        for (const id of buildLayersOf(row)) candidates.delete(id);
      }
      // Leaves first: a layer another stacks on is free once that one is gone.
      for (let moved = true; moved && candidates.size > 0; ) {
        moved = false;
        for (const layer of await this.store.templates.evictableLayers()) {
          if (layer.teamId !== teamId || !candidates.delete(layer.id)) continue;
          if (await this.evict(layer, "its template was deleted")) moved = true;
        }
      }
    });
  }

  /**
   * Before a snapshot or a built template is deleted: removes the layers builds from it stacked
   * on it (directly or on other such layers) that nothing stands on; they would keep it.
   */
  dropLayersOn(base: TemplateRow): Promise<void> {
    return this.serialize(async () => {
      const above = new Set(
        (await this.store.templates.above(base.teamId, base.id)).map((r) => r.id),
      );
      // Leaves first: a layer another stacks on is free once that one is gone.
      for (let moved = true; moved && above.size > 0; ) {
        moved = false;
        for (const layer of await this.store.templates.evictableLayers()) {
          if (!above.delete(layer.id)) continue;
          if (await this.evict(layer, "what it stacks on was deleted")) moved = true;
        }
      }
    });
  }

  private serialize(work: () => Promise<void>): Promise<void> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Removes a layer unless a build holds it; false when it stays (held, or in use after all). */
  private async evict(layer: TemplateRow, why: string): Promise<boolean> {
    if (this.held.has(layer.id)) return false;
    this.removing.add(layer.id);
    try {
      await this.remove(layer);
      this.logger.info(
        {
          op: "template.layer-evict",
          teamId: layer.teamId,
          layerId: layer.id,
          sizeKib: layer.sizeKib,
          usedAt: layer.usedAt,
          why,
        },
        "build layer removed",
      );
      return true;
    } catch (err) {
      // A sandbox started from it since the lookup: it stays, the next trim looks again.
      this.logger.warn(
        { op: "template.layer-evict", teamId: layer.teamId, layerId: layer.id, err },
        "cannot remove a build layer",
      );
      return false;
    } finally {
      this.removing.delete(layer.id);
    }
  }
}
