import type {
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { FORWARDED_AUTHORIZATION_HEADER } from "@wrenn/agent";
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { agentRequest } from "../../hosts/agent-http.js";
import type { AgentHost, Services } from "../../service/index.js";
import type { AppEnv } from "../env.js";
import type { E2bAccessTokens } from "./access-tokens.js";
import { e2bError } from "./errors.js";

/** envd's port inside every sandbox (E2B's constant). */
export const ENVD_PORT = 49983;

export interface EnvdRouterOptions {
  services: Services;
  tokens: E2bAccessTokens;
  /** `WRENN_DOMAIN`: `<port>-<id>.<domain>` host names route to that port of that sandbox. */
  domain: string | null;
  logger: Logger;
}

export interface EnvdRoute {
  sandboxId: string;
  port: number;
}

export type EnvdRouter = MiddlewareHandler<AppEnv>;

// Hop-by-hop headers (RFC 9110 §7.6.1) never cross a proxy; the rest are routing for this hop.
const DROPPED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "host",
  "authorization",
  "x-access-token",
  "e2b-sandbox-id",
  "e2b-sandbox-port",
  "x-wrenn-envd-user",
  FORWARDED_AUTHORIZATION_HEADER,
]);

/**
 * Which sandbox port a request is for: the host name `<port>-<id>.<domain>` first, else E2B's
 * `E2b-Sandbox-Id` / `E2b-Sandbox-Port` headers (how its SDK uses `E2B_SANDBOX_URL`).
 */
export function routeOf(
  headers: IncomingHttpHeaders,
  domain: string | null,
): EnvdRoute | { error: string } | undefined {
  const host = (headers.host ?? "").toLowerCase().replace(/:\d+$/, "");
  if (domain && host.endsWith(`.${domain}`)) {
    const match = /^(\d{1,5})-([a-z0-9]+)$/.exec(host.slice(0, -domain.length - 1));
    if (match) return { port: Number(match[1]), sandboxId: match[2] as string };
  }
  const id = headers["e2b-sandbox-id"];
  if (typeof id !== "string") return undefined;
  const rawPort = headers["e2b-sandbox-port"];
  const port = typeof rawPort === "string" && rawPort ? Number(rawPort) : ENVD_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    return { error: `E2b-Sandbox-Port: ${JSON.stringify(rawPort)} is not a port` };
  }
  return { sandboxId: id.trim(), port };
}

/** The envd user named by E2B's `Authorization: Basic base64("<user>:")`, if any. */
function envdUserOf(auth: string | undefined): string | undefined {
  const match = auth && /^basic\s+(\S+)$/i.exec(auth);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1] as string, "base64").toString("utf8");
  const user = decoded.slice(0, decoded.indexOf(":") >>> 0);
  return user || undefined;
}

function upstreamHeaders(headers: IncomingHttpHeaders, port: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || DROPPED.has(name) || name.startsWith(":")) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  if (port === ENVD_PORT) {
    const user = envdUserOf(headers.authorization);
    if (user) out["x-wrenn-envd-user"] = user;
  } else if (headers.authorization) {
    out[FORWARDED_AUTHORIZATION_HEADER] = headers.authorization;
  }
  return out;
}

function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || (DROPPED.has(name) && name !== "authorization")) continue;
    out[name] = value;
  }
  return out;
}

/**
 * Routes envd traffic and published ports by sandbox, ahead of every other route: envd (49983)
 * needs the sandbox's E2B access token in `X-Access-Token`; other ports are public. The request
 * streams to the sandbox's agent (its `/sandboxes/<id>/envd` or `/ports/<n>` proxy) and the answer
 * streams back, unbuffered both ways with backpressure, for as long as either side keeps it open.
 * An unknown, stopped or paused sandbox answers 502, as E2B's proxy does (its SDK reads 502 as
 * "the sandbox is not running").
 */
export function createEnvdRouter(options: EnvdRouterOptions): EnvdRouter {
  const { services, tokens, domain, logger } = options;
  return async (c, next) => {
    const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
    const incoming = env?.incoming;
    const outgoing = env?.outgoing;
    const headers = incoming?.headers ?? Object.fromEntries(c.req.raw.headers);
    const route = routeOf(headers, domain);
    if (!route) return next();
    if ("error" in route) return e2bError(c, 400, route.error);
    if (!incoming || !outgoing) return e2bError(c, 500, "sandbox routes need the Node server");
    if (
      route.port === ENVD_PORT &&
      !tokens.verify(route.sandboxId, c.req.header("x-access-token")) &&
      // E2B's uploadUrl/downloadUrl carry a signature instead.
      !tokens.verifySignature(
        route.sandboxId,
        new URL(incoming.url ?? "/", "http://sandbox"),
        incoming.method ?? "",
      )
    ) {
      return e2bError(
        c,
        401,
        "X-Access-Token (or a /files URL signature): missing or not this sandbox's",
      );
    }
    const record = await services.sandboxes.findLive(route.sandboxId);
    if (!record) return e2bError(c, 502, `sandbox ${route.sandboxId} is not running`);
    let host: AgentHost;
    try {
      host = await services.sandboxes.reachable(record.teamId, record.id);
    } catch (err) {
      return e2bError(c, 502, `sandbox ${record.id}: ${(err as Error).message}`);
    }
    const prefix =
      route.port === ENVD_PORT
        ? `/sandboxes/${record.id}/envd`
        : `/sandboxes/${record.id}/ports/${route.port}`;
    forward(incoming, outgoing, host, `${prefix}${incoming.url ?? "/"}`, route.port, logger);
    return RESPONSE_ALREADY_SENT;
  };
}

function forward(
  incoming: IncomingMessage,
  outgoing: ServerResponse,
  host: AgentHost,
  path: string,
  port: number,
  logger: Logger,
): void {
  const upstream = agentRequest(host, path, {
    method: incoming.method ?? "GET",
    headers: upstreamHeaders(incoming.headers, port),
  });
  upstream.setNoDelay(true);
  upstream.on("response", (up) => {
    outgoing.writeHead(up.statusCode ?? 502, responseHeaders(up.headers));
    // Headers now, even when the first event is a while away (a quiet process's stream).
    outgoing.flushHeaders();
    up.pipe(outgoing);
    // The far side broke mid-body: the client must see a broken response, not a short one.
    up.once("close", () => {
      if (!up.complete) outgoing.destroy();
    });
  });
  upstream.on("error", (err) => {
    if (outgoing.headersSent) {
      outgoing.destroy(err);
      return;
    }
    logger.warn({ path, err: err.message }, "sandbox route: agent unreachable");
    const body = JSON.stringify({ code: 502, message: "the sandbox's host did not answer" });
    outgoing.writeHead(502, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    outgoing.end(body);
  });
  incoming.pipe(upstream);
  incoming.on("error", (err) => upstream.destroy(err));
  // The client went away before the exchange ended: the upstream call must not linger.
  outgoing.once("close", () => {
    if (!outgoing.writableFinished) upstream.destroy();
  });
}
