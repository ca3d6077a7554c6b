import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { LRUCache } from "lru-cache";

/** Sandboxes whose tokens are kept once derived: an HMAC was a few percent of a `GET`'s CPU. */
const REMEMBERED_SANDBOXES = 10_000;

/**
 * The `envdAccessToken` an E2B client gets at create: derived, not stored — HMAC-SHA256 of the
 * sandbox id under a key derived from the server secret, so every replica sharing
 * `WRENN_JWT_SECRET` checks it without a lookup. It is only ever checked by the server's envd
 * router; envd's own token is another one, known only to the agent.
 */
export class E2bAccessTokens {
  private readonly key: Buffer;
  private readonly trafficKey: Buffer;
  private readonly tokens = new LRUCache<string, string>({ max: REMEMBERED_SANDBOXES });
  private readonly trafficTokens = new LRUCache<string, string>({ max: REMEMBERED_SANDBOXES });

  constructor(secret: string) {
    this.key = createHmac("sha256", secret).update("wrenn/e2b-envd-access-token/v1").digest();
    this.trafficKey = createHmac("sha256", secret).update("wrenn/traffic-access-token/v1").digest();
  }

  tokenFor(sandboxId: string): string {
    return derived(this.tokens, this.key, sandboxId);
  }

  verify(sandboxId: string, token: string | undefined): boolean {
    return Boolean(token) && same(token as string, this.tokenFor(sandboxId));
  }

  /**
   * The traffic access token of a sandbox whose ports are not public (`e2b-traffic-access-token`
   * on requests to them). Derived the same way under its own key: it opens the sandbox's
   * services only, never envd.
   */
  trafficTokenFor(sandboxId: string): string {
    return derived(this.trafficTokens, this.trafficKey, sandboxId);
  }

  verifyTraffic(sandboxId: string, token: string | undefined): boolean {
    return Boolean(token) && same(token as string, this.trafficTokenFor(sandboxId));
  }

  /**
   * A signed `/files` URL of E2B's SDK (`uploadUrl`/`downloadUrl`): `v1_` + unpadded base64 of
   * SHA-256 of `<path>:<read|write>:<user>:<token>[:<expiration>]`, unexpired.
   */
  verifySignature(sandboxId: string, url: URL, method: string): boolean {
    const signature = url.searchParams.get("signature");
    const path = url.searchParams.get("path");
    const operation = method === "GET" ? "read" : method === "POST" ? "write" : undefined;
    if (url.pathname !== "/files" || !signature || path === null || !operation) return false;
    const expiration = url.searchParams.get("signature_expiration");
    if (expiration !== null && !(Number(expiration) * 1000 > Date.now())) return false;
    const user = url.searchParams.get("username") ?? "";
    const raw = `${path}:${operation}:${user}:${this.tokenFor(sandboxId)}${expiration !== null ? `:${expiration}` : ""}`;
    const expected = `v1_${createHash("sha256").update(raw).digest("base64").replace(/=+$/, "")}`;
    return same(signature, expected);
  }
}

function derived(cache: LRUCache<string, string>, key: Buffer, sandboxId: string): string {
  let token = cache.get(sandboxId);
  if (token === undefined) {
    token = createHmac("sha256", key).update(sandboxId).digest("hex");
    cache.set(sandboxId, token);
  }
  return token;
}

function same(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
