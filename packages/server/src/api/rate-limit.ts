import type { Context, MiddlewareHandler } from "hono";
import { ServerError } from "../errors.js";
import type { AppEnv } from "./env.js";
import { errorResponse } from "./error-handling.js";

/**
 * Token buckets in memory, one per key: `perMinute` requests may burst, refilled evenly over a
 * minute. Buckets that are full again are dropped, so idle keys cost nothing.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`: 0 if allowed, else the seconds until one is available. */
  take(key: string): number {
    const now = this.now();
    const rate = this.perMinute / 60_000;
    const bucket = this.buckets.get(key) ?? { tokens: this.perMinute, at: now };
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + (now - bucket.at) * rate);
    bucket.at = now;
    if (bucket.tokens < 1) {
      this.buckets.set(key, bucket);
      return Math.max(1, Math.ceil((1 - bucket.tokens) / rate / 1000));
    }
    bucket.tokens -= 1;
    this.buckets.set(key, bucket);
    if (this.buckets.size > 10_000) this.sweep(now, rate);
    return 0;
  }

  private sweep(now: number, rate: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * rate >= this.perMinute) this.buckets.delete(key);
    }
  }
}

/** The peer address of the TCP connection (never a forwarded header a client can set). */
export function clientIp(c: Context<AppEnv>): string | undefined {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress;
}

/** A 429 `rate_limited`-style refusal with Retry-After, naming what was limited. */
export function tooMany(c: Context<AppEnv>, retryAfterSec: number, what: string): Response {
  c.header("Retry-After", String(retryAfterSec));
  return errorResponse(
    c,
    new ServerError(
      "resource_exhausted",
      `rate limit: too many ${what}; retry after ${retryAfterSec} s`,
      { details: { limit: what } },
    ),
  );
}

/** Limits requests per client IP, then per account (the JSON body's email, if any). */
export function limitAuth(perIp: RateLimiter, perAccount: RateLimiter): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const ip = clientIp(c);
    const ipWait = ip ? perIp.take(ip) : 0;
    if (ipWait) return tooMany(c, ipWait, "auth requests from this address");
    if (c.req.header("content-type")?.includes("application/json")) {
      const body = (await c.req.json().catch(() => undefined)) as { email?: unknown } | undefined;
      if (typeof body?.email === "string") {
        const wait = perAccount.take(body.email.trim().toLowerCase());
        if (wait) return tooMany(c, wait, "auth requests for this account");
      }
    }
    return next();
  };
}
