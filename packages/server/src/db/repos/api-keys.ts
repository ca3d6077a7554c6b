import type { ApiKeyRow } from "../schema.js";
import { prepared } from "./prepared.js";
import type { Executor } from "./types.js";

/** A team's API keys; only their SHA-256 is stored. */
export class ApiKeysRepo {
  /** The lookup behind every API-key request the cache misses: compiled once. */
  private readonly selectByHash;

  constructor(private readonly db: Executor) {
    this.selectByHash = prepared(db, 1, (keyHash: string) =>
      db.selectFrom("teamApiKeys").selectAll().where("keyHash", "=", keyHash),
    );
  }

  async insert(key: ApiKeyRow): Promise<ApiKeyRow> {
    await this.db.insertInto("teamApiKeys").values(key).execute();
    return key;
  }

  list(teamId: string): Promise<ApiKeyRow[]> {
    return this.db
      .selectFrom("teamApiKeys")
      .selectAll()
      .where("teamId", "=", teamId)
      .orderBy("createdAt", "asc")
      .orderBy("id", "asc")
      .execute();
  }

  async findByHash(keyHash: string): Promise<ApiKeyRow | undefined> {
    return (await this.selectByHash(keyHash))[0];
  }

  get(teamId: string, id: string): Promise<ApiKeyRow | undefined> {
    return this.db
      .selectFrom("teamApiKeys")
      .selectAll()
      .where("teamId", "=", teamId)
      .where("id", "=", id)
      .executeTakeFirst();
  }

  async touch(id: string, at: string): Promise<void> {
    await this.db.updateTable("teamApiKeys").set({ lastUsedAt: at }).where("id", "=", id).execute();
  }

  /** Deletes one key of one team; false when that team has no such key. */
  async delete(teamId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom("teamApiKeys")
      .where("teamId", "=", teamId)
      .where("id", "=", id)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }
}
