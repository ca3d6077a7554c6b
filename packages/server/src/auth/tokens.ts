import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { ServerError } from "../errors.js";

const ISSUER = "wrenn";
const ALGORITHM = "HS256";

/** Who a valid user token speaks for. */
export interface TokenClaims {
  userId: string;
  teamId: string;
}

/** What a verified token says, with when it was issued (to refuse revoked ones). */
export interface VerifiedToken extends TokenClaims {
  issuedAtMs: number;
}

/** Shorter HS256 secrets can be brute-forced offline from one token. */
export const MIN_SECRET_LENGTH = 32;

/** Signs and checks the HS256 user tokens handed out at login. */
export class TokenIssuer {
  private readonly key: Uint8Array;

  constructor(
    secret: string,
    private readonly ttlSec: number,
  ) {
    if (Buffer.byteLength(secret) < MIN_SECRET_LENGTH) {
      throw new ServerError(
        "failed_precondition",
        `the JWT secret must be at least ${MIN_SECRET_LENGTH} bytes (WRENN_JWT_SECRET)`,
      );
    }
    this.key = new TextEncoder().encode(secret);
  }

  async sign(claims: TokenClaims, now = new Date()): Promise<{ token: string; expiresAt: Date }> {
    const issuedAt = Math.floor(now.getTime() / 1000);
    const expiresAt = new Date((issuedAt + this.ttlSec) * 1000);
    // Millisecond issue time: a logout refuses tokens issued up to its instant, not its second.
    const token = await new SignJWT({ team_id: claims.teamId, iat_ms: now.getTime() })
      .setProtectedHeader({ alg: ALGORITHM })
      .setIssuer(ISSUER)
      .setSubject(claims.userId)
      .setIssuedAt(issuedAt)
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.key);
    return { token, expiresAt };
  }

  /** The claims of a token this server signed and that has not expired; else unauthenticated. */
  async verify(token: string): Promise<VerifiedToken> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: ISSUER,
        algorithms: [ALGORITHM],
      });
      if (typeof payload.sub !== "string" || typeof payload.team_id !== "string") {
        throw new ServerError("unauthenticated", "token is missing its subject or team");
      }
      const issuedAtMs =
        typeof payload.iat_ms === "number" ? payload.iat_ms : (payload.iat ?? 0) * 1000;
      return { userId: payload.sub, teamId: payload.team_id, issuedAtMs };
    } catch (err) {
      if (err instanceof ServerError) throw err;
      const message =
        err instanceof joseErrors.JWTExpired ? "token has expired" : "token is not valid";
      throw new ServerError("unauthenticated", message, { cause: err });
    }
  }
}

/**
 * The JWT secret: WRENN_JWT_SECRET when set, else one generated on first start and kept in
 * `dataDir/jwt-secret` (mode 0600) so tokens survive restarts. Servers sharing a PostgreSQL
 * database must share WRENN_JWT_SECRET instead.
 */
export async function loadJwtSecret(
  configured: string | undefined,
  dataDir: string,
): Promise<string> {
  if (configured) {
    if (Buffer.byteLength(configured) < MIN_SECRET_LENGTH) {
      throw new ServerError(
        "failed_precondition",
        `WRENN_JWT_SECRET must be at least ${MIN_SECRET_LENGTH} bytes; generate one with: openssl rand -base64 32`,
      );
    }
    return configured;
  }
  const file = join(dataDir, "jwt-secret");
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  try {
    // "wx": only the first of two racing starts creates it; the other reads what it wrote.
    const secret = randomBytes(32).toString("base64url");
    await writeFile(file, secret, { mode: 0o600, flag: "wx" });
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const secret = (await readFile(file, "utf8")).trim();
    if (secret.length < MIN_SECRET_LENGTH) {
      throw new ServerError("failed_precondition", `${file} holds no usable secret; delete it`);
    }
    return secret;
  }
}
