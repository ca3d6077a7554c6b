import { createHash, randomBytes } from "node:crypto";

export const API_KEY_PREFIX = "wrn_";
/** How much of a key is kept to recognise it in a list ("wrn_" and 8 more characters). */
const DISPLAY_PREFIX_LENGTH = API_KEY_PREFIX.length + 8;

/** SHA-256 hex of a key: what is stored and looked up; the key itself is not kept. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** A new key (`wrn_` + 32 random bytes, base64url), its hash and its display prefix. */
export function generateApiKey(): { key: string; hash: string; prefix: string } {
  const key = API_KEY_PREFIX + randomBytes(32).toString("base64url");
  return { key, hash: hashApiKey(key), prefix: key.slice(0, DISPLAY_PREFIX_LENGTH) };
}
