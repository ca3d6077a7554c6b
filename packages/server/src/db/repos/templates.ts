import type { TemplateRow } from "../schema.js";
import type { Executor } from "./types.js";

/** Team snapshots: named templates made from a sandbox; names are unique per team. */
export class TemplatesRepo {
  constructor(private readonly db: Executor) {}

  async insert(template: TemplateRow): Promise<TemplateRow> {
    await this.db.insertInto("templates").values(template).execute();
    return template;
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

  getByName(teamId: string, name: string): Promise<TemplateRow | undefined> {
    return this.db
      .selectFrom("templates")
      .selectAll()
      .where("teamId", "=", teamId)
      .where("name", "=", name)
      .executeTakeFirst();
  }

  list(teamId: string): Promise<TemplateRow[]> {
    return this.db
      .selectFrom("templates")
      .selectAll()
      .where("teamId", "=", teamId)
      .orderBy("createdAt", "asc")
      .orderBy("id", "asc")
      .execute();
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
