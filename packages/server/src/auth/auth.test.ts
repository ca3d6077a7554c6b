import { randomBytes, scryptSync } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { generateApiKey, hashApiKey } from "./api-keys.js";
import { hashPassword, verifyPassword } from "./password.js";
import { loadJwtSecret, TokenIssuer } from "./tokens.js";

describe("passwords", () => {
  it("hash with a fresh salt each time and verify only the right password", async () => {
    const a = await hashPassword("correct horse");
    const b = await hashPassword("correct horse");
    expect(a).not.toBe(b);
    // OWASP's current advice for scrypt: N=2^17, r=8, p=1.
    expect(a).toMatch(/^scrypt\$131072\$8\$1\$[\w-]+\$[\w-]+$/);
    expect(await verifyPassword("correct horse", a)).toBe(true);
    expect(await verifyPassword("correct horse!", a)).toBe(false);
    expect(await verifyPassword("", a)).toBe(false);
  });

  it("still verify hashes stored at the former cost (N=2^15)", async () => {
    const salt = randomBytes(16);
    const key = scryptSync("old password", salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 << 20 });
    const stored = ["scrypt", 2 ** 15, 8, 1, salt.toString("base64url"), key.toString("base64url")];
    expect(await verifyPassword("old password", stored.join("$"))).toBe(true);
    expect(await verifyPassword("new password", stored.join("$"))).toBe(false);
  });

  it("treat malformed stored hashes as a mismatch", async () => {
    for (const stored of [
      "",
      "scrypt",
      "bcrypt$1$2$3$4$5",
      "scrypt$x$8$1$AAAA$BBBB",
      "scrypt$1024$8$1$AAAA$short",
    ]) {
      expect(await verifyPassword("x", stored)).toBe(false);
    }
  });
});

describe("tokens", () => {
  it("round-trip claims and refuse tampering, other secrets and expiry", async () => {
    const issuer = new TokenIssuer("a".repeat(32), 60);
    const { token, expiresAt } = await issuer.sign({ userId: "u", teamId: "t" });
    expect(expiresAt.getTime()).toBeGreaterThan(Date.now());
    expect(await issuer.verify(token)).toMatchObject({ userId: "u", teamId: "t" });
    const [h, p, s] = token.split(".") as [string, string, string];
    await expect(issuer.verify(`${h}.${p}x.${s}`)).rejects.toMatchObject({
      code: "unauthenticated",
    });
    await expect(new TokenIssuer("b".repeat(32), 60).verify(token)).rejects.toMatchObject({
      code: "unauthenticated",
    });
    const old = await issuer.sign({ userId: "u", teamId: "t" }, new Date(Date.now() - 120_000));
    await expect(issuer.verify(old.token)).rejects.toThrow("expired");
    // An unsigned token ("alg":"none") is never accepted.
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${p}.`;
    await expect(issuer.verify(none)).rejects.toMatchObject({ code: "unauthenticated" });
  });

  it("keep one generated secret per data dir, mode 0600, and refuse a truncated one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "wrenn-secret-"));
    try {
      const [a, b] = await Promise.all([
        loadJwtSecret(undefined, dir),
        loadJwtSecret(undefined, dir),
      ]);
      expect(a).toBe(b);
      expect((await stat(join(dir, "jwt-secret"))).mode & 0o777).toBe(0o600);
      const configured = "c".repeat(32);
      expect(await loadJwtSecret(configured, dir)).toBe(configured);
      // A configured secret shorter than 32 bytes is refused like a short generated one.
      await expect(loadJwtSecret("configured", dir)).rejects.toMatchObject({
        code: "failed_precondition",
        message: expect.stringContaining("WRENN_JWT_SECRET"),
      });
      await writeFile(join(dir, "jwt-secret"), "short");
      await expect(loadJwtSecret(undefined, dir)).rejects.toMatchObject({
        code: "failed_precondition",
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("API keys", () => {
  it("are wrn_ + 32 random bytes, stored as their SHA-256", () => {
    const { key, hash, prefix } = generateApiKey();
    expect(key).toMatch(/^wrn_[\w-]{43}$/);
    expect(hash).toBe(hashApiKey(key));
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(key.startsWith(prefix)).toBe(true);
    expect(generateApiKey().key).not.toBe(key);
  });
});
