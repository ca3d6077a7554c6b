import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import { type ApiKeyFormat, generateApiKey, hashApiKey, looksLikeApiKey } from "../auth/index.js";
import { type ApiKeyRow, isId, newId, nowIso, type Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import type { TeamPrincipal, UserPrincipal } from "./principals.js";

/** An API key as listed: never the key itself, only its first characters. */
export interface ApiKeyView {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
}

/** Recording every use would be a write per request; once a minute is enough to show activity. */
const LAST_USED_GRANULARITY_MS = 60_000;
/**
 * How long a looked-up key is trusted without asking the database again: the bound on how long a
 * key deleted through another server process keeps working (this process forgets it at once).
 */
export const API_KEY_CACHE_TTL_MS = 4_000;
/** Keys remembered at once; the least recently used go first. */
const API_KEY_CACHE_SIZE = 10_000;

/** A team's API keys: create (shown once), list, delete, and authenticate requests with them. */
export class ApiKeyService {
  /** SHA-256 of a live key → who it speaks for: most requests then never touch the database. */
  private readonly cache = new LRUCache<string, TeamPrincipal>({
    max: API_KEY_CACHE_SIZE,
    ttl: API_KEY_CACHE_TTL_MS,
  });
  /** Bumped by every delete: a lookup that raced one is not cached (it may predate the delete). */
  private deletes = 0;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {}

  async create(
    principal: UserPrincipal,
    name: string,
    format: ApiKeyFormat = "wrenn",
  ): Promise<ApiKeyView & { key: string }> {
    const { key, hash, prefix } = generateApiKey(format);
    const row: ApiKeyRow = {
      id: newId(),
      teamId: principal.teamId,
      name,
      keyHash: hash,
      keyPrefix: prefix,
      createdBy: principal.userId,
      createdAt: nowIso(),
      lastUsedAt: null,
    };
    await this.store.apiKeys.insert(row);
    this.logger.info(
      { op: "api_key.create", teamId: row.teamId, apiKeyId: row.id },
      "api key created",
    );
    return { ...toView(row), key };
  }

  async list(teamId: string): Promise<ApiKeyView[]> {
    return (await this.store.apiKeys.list(teamId)).map(toView);
  }

  async delete(teamId: string, id: string): Promise<void> {
    if (!isId(id) || !(await this.store.apiKeys.delete(teamId, id))) {
      throw new ServerError("not_found", `api key ${JSON.stringify(id)} not found`);
    }
    this.deletes++;
    // Deletes are rare and the cache is bounded: a scan beats keeping a second index.
    for (const [hash, principal] of this.cache.entries()) {
      if (principal.apiKeyId === id) this.cache.delete(hash);
    }
    this.logger.info({ op: "api_key.delete", teamId, apiKeyId: id }, "api key deleted");
  }

  /** The team a key belongs to; unauthenticated for anything that is not a live key. */
  async authenticate(key: string): Promise<TeamPrincipal> {
    if (!looksLikeApiKey(key)) {
      throw new ServerError("unauthenticated", "API key is not valid");
    }
    const hash = hashApiKey(key);
    const cached = this.cache.get(hash);
    if (cached) return cached;
    const deletes = this.deletes;
    const row = await this.store.apiKeys.findByHash(hash);
    if (!row) throw new ServerError("unauthenticated", "API key is not valid");
    const now = new Date();
    if (!row.lastUsedAt || now.getTime() - Date.parse(row.lastUsedAt) > LAST_USED_GRANULARITY_MS) {
      await this.store.apiKeys.touch(row.id, nowIso(now));
    }
    const principal: TeamPrincipal = { kind: "api_key", teamId: row.teamId, apiKeyId: row.id };
    if (deletes === this.deletes) this.cache.set(hash, principal);
    return principal;
  }
}

function toView(row: ApiKeyRow): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    prefix: row.keyPrefix,
    createdAt: row.createdAt,
    lastUsedAt: row.lastUsedAt,
  };
}
