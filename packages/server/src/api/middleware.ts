import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { ServerError } from "../errors.js";
import type { Services } from "../service/index.js";
import type { AppEnv } from "./env.js";

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** User routes: `Authorization: Bearer <jwt>` from login. */
export function requireUser(services: Services): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization");
    const token = header && BEARER.exec(header)?.[1];
    if (!token) {
      throw new ServerError(
        "unauthenticated",
        "send Authorization: Bearer <token> from /v1/auth/login",
      );
    }
    c.set("user", await services.accounts.authenticateToken(token));
    await next();
  };
}

/** Sandbox routes: `X-API-Key: wrn_…` resolves the team. */
export function requireApiKey(services: Services): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = c.req.header("x-api-key")?.trim();
    if (!key)
      throw new ServerError(
        "unauthenticated",
        "send X-API-Key: <key> (create one with POST /v1/api-keys)",
      );
    c.set("team", await services.apiKeys.authenticate(key));
    await next();
  };
}

/** Read-only routes open to both: an API key if one is sent, else a bearer token. */
export function requireUserOrApiKey(services: Services): MiddlewareHandler<AppEnv> {
  const byKey = requireApiKey(services);
  const byUser = requireUser(services);
  return (c, next) => (c.req.header("x-api-key") ? byKey(c, next) : byUser(c, next));
}

/** One log line per request, with its duration. */
export function requestLog(logger: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    await next();
    logger.info(
      {
        requestId: c.get("requestId"),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round((performance.now() - started) * 100) / 100,
      },
      "request",
    );
  };
}
