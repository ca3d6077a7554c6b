import type {
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { endRelay, FORWARDED_AUTHORIZATION_HEADER, unreachableMessage } from "@wrenn/agent";
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { agentRequest, isStraightToSandbox } from "../../hosts/agent-http.js";
import type { AgentHost } from "../../service/index.js";
import type { AppEnv } from "../env.js";
import { e2bError } from "./errors.js";
import { ENVD_PORT, type RouteAccess, routeOf, TRAFFIC_TOKEN_HEADER } from "./route-access.js";

export interface EnvdRouterOptions {
  /** The checks (shared with the WebSocket tunnel, so both share one auto-resume). */
  access: RouteAccess;
  domain: string | null;
  logger: Logger;
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
  TRAFFIC_TOKEN_HEADER,
  FORWARDED_AUTHORIZATION_HEADER,
]);

/** The envd user named by E2B's `Authorization: Basic base64("<user>:")`, if any. */
function envdUserOf(auth: string | undefined): string | undefined {
  const match = auth && /^basic\s+(\S+)$/i.exec(auth);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1] as string, "base64").toString("utf8");
  const user = decoded.slice(0, decoded.indexOf(":") >>> 0);
  return user || undefined;
}

export function upstreamHeaders(
  headers: IncomingHttpHeaders,
  port: number,
): Record<string, string> {
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
 * Routes envd traffic and published ports by sandbox, ahead of every other route (the checks:
 * `createRouteAccess`). The request streams to the sandbox's agent (its `/sandboxes/<id>/envd`
 * or `/ports/<n>` proxy) and the answer streams back, unbuffered both ways with backpressure, for
 * as long as either side keeps it open.
 */
export function createEnvdRouter(options: EnvdRouterOptions): EnvdRouter {
  const { access, domain, logger } = options;
  return async (c, next) => {
    const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
    const incoming = env?.incoming;
    const outgoing = env?.outgoing;
    const headers = incoming?.headers ?? Object.fromEntries(c.req.raw.headers);
    const route = routeOf(headers, domain);
    if (!route) return next();
    if ("error" in route) return e2bError(c, 400, route.error);
    if (!incoming || !outgoing) return e2bError(c, 500, "sandbox routes need the Node server");
    const target = await access(route, headers, incoming.url ?? "/", incoming.method ?? "");
    if (!("host" in target)) {
      return c.json(
        { code: target.status, message: target.message, ...target.extra },
        target.status as 400,
      );
    }
    forward(incoming, outgoing, target.host, route.sandboxId, target.path, target.port, logger);
    return RESPONSE_ALREADY_SENT;
  };
}

/** The Connect call E2B's `files.remove` makes. */
const REMOVE_CALL = "/filesystem.Filesystem/Remove";
/** More than any Connect error body from envd. */
const MAX_ERROR_BODY = 64 * 1024;

const isRemoveCall = (path: string) => new URL(path, "http://x").pathname.endsWith(REMOVE_CALL);

/**
 * E2B's envd removes with os.RemoveAll, so removing a path that is not there succeeds, and E2B's
 * clients rely on it (an idempotent cleanup). Wrenn's envd answers not_found (Wrenn's own API
 * says 404): for E2B's clients, envd's "no such file" (`up`, a 404) becomes Remove's empty
 * answer. Writes the head and body into `outgoing`; `endRelay` ends it.
 */
function relayRemoveOfMissing(
  up: IncomingMessage,
  incoming: IncomingMessage,
  outgoing: ServerResponse,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  up.on("data", (chunk: Buffer) => {
    size += chunk.length;
    chunks.push(chunk);
    if (size > MAX_ERROR_BODY) {
      // Not an error body envd sends: a broken answer rather than one held in memory.
      up.destroy();
      outgoing.destroy();
    }
  });
  up.once("end", () => {
    const text = Buffer.concat(chunks).toString("utf8");
    let error: { code?: unknown; message?: unknown } = {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === "object") error = parsed;
    } catch {}
    // Only envd's own ENOENT: the agent's not_found (no such sandbox) stays what it is.
    const missing =
      error.code === "not_found" &&
      typeof error.message === "string" &&
      /\bENOENT\b/.test(error.message);
    if (!missing) {
      outgoing.writeHead(404, responseHeaders(up.headers));
      outgoing.write(text);
      return;
    }
    const json = !/^application\/proto\b/i.test(incoming.headers["content-type"] ?? "");
    const body = json ? "{}" : "";
    outgoing.writeHead(200, {
      "content-type": json ? "application/json" : "application/proto",
      "content-length": Buffer.byteLength(body),
    });
    outgoing.write(body);
  });
}

function forward(
  incoming: IncomingMessage,
  outgoing: ServerResponse,
  host: AgentHost,
  sandboxId: string,
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
    if (port === ENVD_PORT && up.statusCode === 404 && isRemoveCall(path)) {
      relayRemoveOfMissing(up, incoming, outgoing);
    } else {
      outgoing.writeHead(up.statusCode ?? 502, responseHeaders(up.headers));
      // Headers now, even when the first event is a while away (a quiet process's stream).
      outgoing.flushHeaders();
      up.pipe(outgoing, { end: false });
    }
    // Once the body's rest is read when the sandbox answered early (as the agent's proxy does).
    endRelay(up, upstream, incoming, outgoing);
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
    const message = isStraightToSandbox(upstream)
      ? unreachableMessage(sandboxId, port === ENVD_PORT ? undefined : port, err)
      : "the sandbox's host did not answer";
    logger.warn({ path, err: err.message }, "sandbox route: upstream unreachable");
    const body = JSON.stringify({ code: 502, message });
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
