import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { ServerError } from "../errors.js";

const ISSUER = "wrenn";
const AUDIENCE = "wrenn-host";
const ALGORITHM = "HS256";

export const HOST_JWT_TTL_SEC = 7 * 24 * 3600;
export const HOST_REFRESH_TTL_SEC = 60 * 24 * 3600;

/** Who a host JWT speaks for, and the refresh token it was issued with. */
export interface HostClaims {
  hostId: string;
  refreshTokenId: string;
}

/**
 * Host credentials: the HS256 host JWTs agents heartbeat with (audience `wrenn-host`, so a user
 * token never passes as one nor the reverse), and the sealing of the key the server presents to
 * each agent (AES-256-GCM under a key derived from the server secret: a database dump alone does
 * not let anyone drive an agent).
 */
export class HostCredentials {
  private readonly signingKey: Uint8Array;
  private readonly sealingKey: Buffer;

  constructor(secret: string) {
    this.signingKey = new TextEncoder().encode(secret);
    this.sealingKey = createHash("sha256").update(`wrenn-agent-key:${secret}`).digest();
  }

  async sign(
    claims: HostClaims,
    ttlSec = HOST_JWT_TTL_SEC,
    now = new Date(),
  ): Promise<{ token: string; expiresAt: Date }> {
    const issuedAt = Math.floor(now.getTime() / 1000);
    const expiresAt = new Date((issuedAt + ttlSec) * 1000);
    const token = await new SignJWT({ rt: claims.refreshTokenId })
      .setProtectedHeader({ alg: ALGORITHM })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(claims.hostId)
      .setIssuedAt(issuedAt)
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.signingKey);
    return { token, expiresAt };
  }

  /** The claims of a host JWT this server signed and that has not expired; else 401. */
  async verify(token: string): Promise<HostClaims> {
    try {
      const { payload } = await jwtVerify(token, this.signingKey, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: [ALGORITHM],
      });
      if (typeof payload.sub !== "string" || typeof payload.rt !== "string") {
        throw new ServerError("unauthenticated", "host token is missing its host or family");
      }
      return { hostId: payload.sub, refreshTokenId: payload.rt };
    } catch (err) {
      if (err instanceof ServerError) throw err;
      const message =
        err instanceof joseErrors.JWTExpired ? "host token has expired" : "host token is not valid";
      throw new ServerError("unauthenticated", message, { cause: err });
    }
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.sealingKey, iv);
    const sealed = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return [iv, sealed, cipher.getAuthTag()].map((b) => b.toString("base64url")).join(".");
  }

  unseal(text: string): string {
    const [iv, sealed, tag] = text.split(".").map((p) => Buffer.from(p, "base64url"));
    if (!iv || !sealed || !tag) throw new ServerError("internal", "sealed agent key is malformed");
    const decipher = createDecipheriv("aes-256-gcm", this.sealingKey, iv);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(sealed), decipher.final()]).toString("utf8");
  }
}

/** A new opaque token (registration or refresh) and the hash it is stored under. */
export function newOpaqueToken(prefix: string): { token: string; hash: string } {
  const token = `${prefix}${randomBytes(32).toString("base64url")}`;
  return { token, hash: hashOpaqueToken(token) };
}

export function hashOpaqueToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}
