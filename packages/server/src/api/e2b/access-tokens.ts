import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * The `envdAccessToken` an E2B client gets at create: derived, not stored — HMAC-SHA256 of the
 * sandbox id under a key derived from the server secret, so every replica sharing
 * `WRENN_JWT_SECRET` checks it without a lookup. It is only ever checked by the server's envd
 * router; envd's own token is another one, known only to the agent.
 */
export class E2bAccessTokens {
  private readonly key: Buffer;

  constructor(secret: string) {
    this.key = createHmac("sha256", secret).update("wrenn/e2b-envd-access-token/v1").digest();
  }

  tokenFor(sandboxId: string): string {
    return createHmac("sha256", this.key).update(sandboxId).digest("hex");
  }

  verify(sandboxId: string, token: string | undefined): boolean {
    if (!token) return false;
    const expected = Buffer.from(this.tokenFor(sandboxId));
    const given = Buffer.from(token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
