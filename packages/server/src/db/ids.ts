import { randomBytes } from "node:crypto";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
/** 20 characters of base 36 ≈ 103 bits: unguessable, and short enough for a DNS label. */
const ID_LENGTH = 20;
/** Bytes ≥ this would bias the alphabet (256 is not a multiple of 36), so they are redrawn. */
const UNBIASED_LIMIT = 256 - (256 % ALPHABET.length);

/**
 * A new id: lowercase alphanumerics starting with a letter, so it is safe as a DNS label
 * (`{port}-{id}.{domain}`) and as a sandbox id the agent accepts.
 */
export function newId(): string {
  let id = "";
  while (id.length < ID_LENGTH) {
    for (const byte of randomBytes(ID_LENGTH * 2)) {
      if (byte >= UNBIASED_LIMIT) continue;
      const ch = ALPHABET[byte % ALPHABET.length] as string;
      if (id.length === 0 && ch >= "0" && ch <= "9") continue;
      id += ch;
      if (id.length === ID_LENGTH) break;
    }
  }
  return id;
}

/** Ids the server could have made; anything else cannot name a row, so it is not looked up. */
export function isId(value: string): boolean {
  return /^[a-z][a-z0-9]{19}$/.test(value);
}

/** Now as ISO-8601 text with milliseconds and `Z`: sorts as text in both databases. */
export function nowIso(date: Date = new Date()): string {
  return date.toISOString();
}
