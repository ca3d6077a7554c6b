import type { Context, MiddlewareHandler } from "hono";
import { ServerError } from "../errors.js";
import type { RateLimiter } from "../service/rate-limiter.js";
import type { AppEnv } from "./env.js";
import { errorResponse } from "./error-handling.js";

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
