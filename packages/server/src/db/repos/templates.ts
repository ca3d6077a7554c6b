import type { NewTemplateRow, TemplateKind, TemplateRow } from "../schema.js";
import type { Executor } from "./types.js";

/**
 * `name@build-<id>`: a build's result until its start command is checked and it becomes the
 * newest version. `@` is not allowed in names teams give, so no template of theirs looks like one.
 */
export const BUILD_MARK = "@build-";

/**
 * Team templates: snapshots of sandboxes, templates built from a recipe and their cached build
 * layers (one table, told apart by `kind`); names are unique per team.
 */
export class TemplatesRepo {
  constructor(private readonly db: Executor) {}

  async insert(template: NewTemplateRow): Promise<TemplateRow> {
    await this.db.insertInto("templates").values(template).execute();
    return this.db
      .selectFrom("templates")
      .selectAll()
      .where("id", "=", template.id)
      .executeTakeFirstOrThrow();
  }

  get(teamId: string, id: string): Promise<TemplateRow | undefined> {
    return this.db
      .selectFrom("templates")
      .selectAll()
      .where("teamId", "=", teamId)
      .where("id", "=", id)
      .executeTakeFirst();
  }

  /** Whatever its team: only for the reconciler, which matches agents' copies to rows. */
  getById(id: string): Promise<TemplateRow | undefined> {
    return this.db.selectFrom("templates").selectAll().where("id", "=", id).executeTakeFirst();
  }

  /** The parent a row stacks on, whatever its team (copies between hosts follow the chain). */
  async parentOf(id: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom("templates")
      .select("parentId")
      .where("id", "=", id)
      .executeTakeFirst();
    return row?.parentId ?? undefined;
  }

  /** The team's rows stacked on `id`, directly or through others: what must go before it. */
  async above(teamId: string, id: string): Promise<TemplateRow[]> {
    return (await this.aboveEach(teamId, [id])).get(id) ?? [];
  }

  /** `above` for each of `ids`, from one read of the team's rows. */
  async aboveEach(teamId: string, ids: readonly string[]): Promise<Map<string, TemplateRow[]>> {
    const rows = await this.db
      .selectFrom("templates")
      .selectAll()
      .where("teamId", "=", teamId)
      .execute();
    return new Map(ids.map((id) => [id, stackedOn(rows, id)]));
  }

  /** By name; only of `kind` when given. */
  getByName(teamId: string, name: string, kind?: TemplateKind): Promise<TemplateRow | undefined> {
    let query = this.db
      .selectFrom("templates")
      .selectAll()
      .where("teamId", "=", teamId)
      .where("name", "=", name);
    if (kind) query = query.where("kind", "=", kind);
    return query.executeTakeFirst();
  }

  /** The team's cached build layer of `cacheKey`, if one was made. */
  getLayer(teamId: string, cacheKey: string): Promise<TemplateRow | undefined> {
    return this.db
      .selectFrom("templates")
      .selectAll()
      .where("teamId", "=", teamId)
      .where("kind", "=", "layer")
      .where("cacheKey", "=", cacheKey)
      .executeTakeFirst();
  }

  /** A build made or reused the layer `id` at `at` (the cache keeps recently used layers). */
  async touchLayer(id: string, at: string): Promise<void> {
    await this.db
      .updateTable("templates")
      .set({ usedAt: at })
      .where("id", "=", id)
      .where("kind", "=", "layer")
      .execute();
  }

  /** Every team's build layers (id and size), for the cache's budget. */
  allLayers(): Promise<Pick<TemplateRow, "id" | "sizeKib">[]> {
    return this.db
      .selectFrom("templates")
      .select(["id", "sizeKib"])
      .where("kind", "=", "layer")
      .execute();
  }

  /**
   * Every team's build layers that nothing stands on: no row stacks on them and no sandbox that
   * is not stopped started from them; least recently used first.
   */
  evictableLayers(): Promise<TemplateRow[]> {
    return this.db
      .selectFrom("templates")
      .selectAll("templates")
      .where("templates.kind", "=", "layer")
      .where(({ exists, not, selectFrom }) =>
        not(
          exists(
            selectFrom("templates as child")
              .select("child.id")
              .whereRef("child.parentId", "=", "templates.id"),
          ),
        ),
      )
      .where(({ exists, not, selectFrom }) =>
        not(
          exists(
            selectFrom("sandboxes")
              .select("sandboxes.id")
              .whereRef("sandboxes.snapshotId", "=", "templates.id")
              .where("sandboxes.state", "!=", "stopped"),
          ),
        ),
      )
      .orderBy("templates.usedAt", "asc")
      .orderBy("templates.createdAt", "asc")
      .execute();
  }

  /** The team's rows of one kind (snapshots by default), oldest first. */
  list(teamId: string, kind: TemplateKind = "snapshot"): Promise<TemplateRow[]> {
    return this.db
      .selectFrom("templates")
      .selectAll()
      .where("teamId", "=", teamId)
      .where("kind", "=", kind)
      .orderBy("createdAt", "asc")
      .orderBy("id", "asc")
      .execute();
  }

  async rename(teamId: string, id: string, name: string): Promise<void> {
    await this.db
      .updateTable("templates")
      .set({ name })
      .where("teamId", "=", teamId)
      .where("id", "=", id)
      .execute();
  }

  /** A built template's row becomes version `version` of `name`. */
  async promote(teamId: string, id: string, name: string, version: number): Promise<void> {
    await this.db
      .updateTable("templates")
      .set({ name, version })
      .where("teamId", "=", teamId)
      .where("id", "=", id)
      .execute();
  }

  /**
   * Deletes the results of builds begun before `before` (ISO) that never became a template: their
   * server stopped mid-build. Returns their ids; their snapshots are then claimed by no row.
   */
  async deleteUnfinishedBuilds(before: string): Promise<string[]> {
    const rows = await this.db
      .deleteFrom("templates")
      .where("kind", "=", "template")
      .where("name", "like", `%${BUILD_MARK}%`)
      .where("createdAt", "<", before)
      .returning("id")
      .execute();
    return rows.map((r) => r.id);
  }

  async delete(teamId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom("templates")
      .where("teamId", "=", teamId)
      .where("id", "=", id)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }
}

/** The rows of `rows` stacked on `id`, directly or through others. */
function stackedOn(rows: readonly TemplateRow[], id: string): TemplateRow[] {
  const found = new Set([id]);
  const above: TemplateRow[] = [];
  // Parents come before children in no particular order: look again until nothing is added.
  for (let added = true; added; ) {
    added = false;
    for (const row of rows) {
      if (row.parentId && found.has(row.parentId) && !found.has(row.id)) {
        found.add(row.id);
        above.push(row);
        added = true;
      }
    }
  }
  return above;
}
