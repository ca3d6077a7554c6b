import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { ServerError } from "../errors.js";
import type { Services } from "../service/index.js";
import type { AppEnv } from "./env.js";

export const BEARER = /^Bearer\s+(\S+)\s*$/i;

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

/**
 * Sandbox routes: `X-API-Key: wrn_…` resolves the team. Streaming routes (`query: true`) also take
 * `?ticket=` from `POST /v1/sandboxes/{id}/ticket`, since browsers cannot set headers on an
 * EventSource or a WebSocket; an API key never travels in a URL.
 */
export function requireApiKey(
  services: Services,
  options: { query?: boolean } = {},
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = c.req.header("x-api-key")?.trim();
    const ticket = options.query ? c.req.query("ticket")?.trim() : undefined;
    if (key) c.set("team", await services.apiKeys.authenticate(key));
    else if (ticket) {
      const teamId = await services.tickets.redeem(ticket, c.req.param("id") ?? "");
      // The ticket was issued to one of the team's keys; which one does not travel with it.
      c.set("team", { kind: "api_key", teamId, apiKeyId: "" });
    } else
      throw new ServerError(
        "unauthenticated",
        `send X-API-Key: <key>${options.query ? " or ?ticket=<ticket from POST /v1/sandboxes/{id}/ticket>" : ""} (create one with POST /v1/api-keys)`,
      );
    await next();
  };
}

/** Read-only routes open to both: an API key if one is sent, else a bearer token. */
export function requireUserOrApiKey(services: Services): MiddlewareHandler<AppEnv> {
  const byKey = requireApiKey(services);
  const byUser = requireUser(services);
  return (c, next) => (c.req.header("x-api-key") ? byKey(c, next) : byUser(c, next));
}

/** A client's own X-Request-Id is kept when it is this tame; otherwise a UUID is made. */
const CLIENT_REQUEST_ID = /^[\w\-=]{1,255}$/;

/**
 * Names every request (`c.get("requestId")`) and answers with it in X-Request-Id, like
 * hono/request-id, but cheaper: on Node the header goes straight onto the outgoing response,
 * where Hono's `c.header()` builds a WHATWG Headers object per request (measured: 10–25% of the
 * CPU of a `GET /v1/sandboxes/{id}`). In-process (`app.request`) there is
 * no Node response, so Hono's way is the fallback.
 */
export function requestIds(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const sent = c.req.header("x-request-id");
    const id = sent && CLIENT_REQUEST_ID.test(sent) ? sent : randomUUID();
    c.set("requestId", id);
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (outgoing) outgoing.setHeader("x-request-id", id);
    else c.header("x-request-id", id);
    await next();
  };
}

/**
 * Refuses a query whose percent-encoding is not UTF-8 (`?path=/tmp/%FF`): Hono hands such a
 * value on undecoded, so `%FF` would silently become part of a file name or a filter.
 */
export function wellFormedQuery(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const url = c.req.url;
    const start = url.indexOf("?");
    // Only a query with a '%' can be malformed: most requests pay one indexOf.
    if (start !== -1 && url.includes("%", start)) {
      for (const part of url.slice(start + 1).split("&")) {
        try {
          decodeURIComponent(part);
        } catch {
          const name = (part.split("=")[0] ?? "").slice(0, 64);
          throw new ServerError(
            "invalid_argument",
            `query parameter ${JSON.stringify(name)}: malformed percent-encoding (it must encode UTF-8)`,
          );
        }
      }
    }
    await next();
  };
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
