import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

// scrypt from node:crypto: a memory-hard KDF with no native dependency. The parameters travel
// with each hash, so they can be raised later without breaking stored passwords. N=2^17, r=8,
// p=1 is OWASP's current advice for scrypt (128 MiB per hash).
const N = 2 ** 17;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;

/**
 * scrypt runs on libuv's thread pool (4 threads), which file I/O of the embedded agent shares:
 * at most this many hashes run at once, the rest wait their turn on the event loop.
 */
const MAX_CONCURRENT = 2;
let running = 0;
const waiting: (() => void)[] = [];

async function derive(
  password: string,
  salt: Buffer,
  n: number,
  r: number,
  p: number,
): Promise<Buffer> {
  // A finishing hash hands its slot straight to the next waiter.
  if (running >= MAX_CONCURRENT) await new Promise<void>((go) => waiting.push(go));
  else running++;
  try {
    return await scryptAsync(password, salt, n, r, p);
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

function scryptAsync(
  password: string,
  salt: Buffer,
  n: number,
  r: number,
  p: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem must cover 128 * n * r bytes, with room to spare.
    scrypt(password, salt, KEY_LENGTH, { N: n, r, p, maxmem: 256 * n * r }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** `scrypt$N$r$p$salt$hash` (base64url), with a fresh random salt per call. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const key = await derive(password, salt, N, R, P);
  return ["scrypt", N, R, P, salt.toString("base64url"), key.toString("base64url")].join("$");
}

/** Constant-time check of `password` against a stored hash; false for anything malformed. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const salt = Buffer.from(parts[4] as string, "base64url");
  const expected = Buffer.from(parts[5] as string, "base64url");
  if (![n, r, p].every(Number.isSafeInteger) || expected.length !== KEY_LENGTH) return false;
  // A stored hash is trusted input, but its cost is bounded all the same.
  if (n > 2 ** 20 || r > 16 || p > 4) return false;
  const actual = await derive(password, salt, n, r, p);
  return timingSafeEqual(actual, expected);
}

let decoy: Promise<string> | undefined;

/**
 * A hash of nothing anyone knows: login verifies against it when the email is unknown, so an
 * unknown email takes as long to reject as a wrong password.
 */
export function decoyPasswordHash(): Promise<string> {
  decoy ??= hashPassword(randomBytes(16).toString("hex"));
  return decoy;
}
