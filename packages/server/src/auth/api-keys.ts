import { createHash, randomBytes } from "node:crypto";

export const API_KEY_PREFIX = "wrn_";
/** Keys issued for E2B's SDK, whose older releases refuse any key not shaped `e2b_<hex>`. */
export const E2B_API_KEY_PREFIX = "e2b_";
/** How much of a key is kept to recognise it in a list (the prefix and 8 more characters). */
const DISPLAY_PREFIX_LENGTH = API_KEY_PREFIX.length + 8;

export type ApiKeyFormat = "wrenn" | "e2b";

/** Whether a string could be a key this server issued (of either format). */
export function looksLikeApiKey(key: string): boolean {
  return key.startsWith(API_KEY_PREFIX) || key.startsWith(E2B_API_KEY_PREFIX);
}

/** SHA-256 hex of a key: what is stored and looked up; the key itself is not kept. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/**
 * A new key (`wrn_` + 32 random bytes as base64url, or `e2b_` + the same as hex), its hash and its
 * display prefix.
 */
export function generateApiKey(format: ApiKeyFormat = "wrenn"): {
  key: string;
  hash: string;
  prefix: string;
} {
  const bytes = randomBytes(32);
  const key =
    format === "e2b"
      ? E2B_API_KEY_PREFIX + bytes.toString("hex")
      : API_KEY_PREFIX + bytes.toString("base64url");
  return { key, hash: hashApiKey(key), prefix: key.slice(0, DISPLAY_PREFIX_LENGTH) };
}
