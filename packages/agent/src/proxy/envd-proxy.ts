import http, { type IncomingHttpHeaders } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Duplex } from "node:stream";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { createEndStreamSerialization, endStreamFlag } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { AgentError } from "../errors.js";
import type { SandboxInfo } from "../runtime/index.js";
import { isSandboxId } from "../state/index.js";
import { unreachableMessage } from "./connect-failure.js";
import { corkEachTurn } from "./cork.js";
import { endRelay } from "./end-relay.js";
import { LargeReadAgent } from "./large-reads.js";
import { refuseUpgrade, tunnelUpgrade } from "./upgrade-tunnel.js";

export type ProxyRequest = http.IncomingMessage | Http2ServerRequest;
export type ProxyResponse = http.ServerResponse | Http2ServerResponse;

export interface EnvdProxyOptions {
  /** The sandbox or a not_found AgentError. */
  lookup: (id: string) => SandboxInfo;
  /**
   * Called when a proxied request starts (reaper activity); the returned function when it ends,
   * so a long exec stream keeps its sandbox from being paused under it.
   */
  onActivity: (id: string) => () => void;
  logger: Logger;
}

const PREFIX = "/sandboxes/";
// Hop-by-hop headers (RFC 9110 §7.6.1) and HTTP/2 pseudo-headers never cross the proxy.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "host",
  "http2-settings",
]);

/**
 * `/sandboxes/<id>/envd/<rest>` → `{ id, path: "/<rest>?query" }`; `/sandboxes/<id>/ports/<n>/<rest>`
 * → the same with `port: n` (a service the sandbox's user started); otherwise undefined.
 */
export function parseProxyPath(
  url: string,
): { id: string; path: string; port?: number } | undefined {
  if (!url.startsWith(PREFIX)) return undefined;
  const match = /^\/sandboxes\/([^/?]+)\/(envd|ports\/(\d{1,5}))(\/.*|\?.*)?$/s.exec(url);
  if (!match) return undefined;
  const rest = match[4] ?? "/";
  const path = rest.startsWith("?") ? `/${rest}` : rest;
  return match[3] ? { id: match[1]!, path, port: Number(match[3]) } : { id: match[1]!, path };
}

/**
 * On `/ports/<n>` routes the caller's own `Authorization` travels in this header, since the real
 * one carries the agent's bearer; it is restored for the sandbox's service.
 */
export const FORWARDED_AUTHORIZATION_HEADER = "x-wrenn-authorization";

/**
 * Forwards envd traffic (Connect unary and streaming, /files up- and downloads) to a sandbox's
 * envd. Bodies are piped both ways with backpressure, never buffered, over keep-alive
 * connections.
 */
export class EnvdProxy {
  private readonly agent = new LargeReadAgent({
    keepAlive: true,
    // Small writes (stream events, unary calls) must not wait on Nagle + delayed ACK.
    noDelay: true,
    maxSockets: 256,
    maxFreeSockets: 16,
    // Idle connections close on this side first: a second before envd's announced keep-alive
    // (65 s) runs out, or after this when sooner. Without a timeout one is kept until envd closes
    // it, and a call sent at that moment fails with "socket hang up". Quiet streams are not cut:
    // Node only closes idle (pooled) sockets on this timeout.
    timeout: 60_000,
  });
  private readonly opts: EnvdProxyOptions;

  constructor(opts: EnvdProxyOptions) {
    this.opts = opts;
  }

  /** Handles the request if it is a proxy path; false otherwise. */
  handle(req: ProxyRequest, res: ProxyResponse): boolean {
    const target = this.resolve(req.url ?? "");
    if (!target) return false;
    if (target instanceof AgentError) {
      sendError(res, target, req.headers["content-type"]);
      return true;
    }
    res.once("close", this.opts.onActivity(target.sandbox.id));
    this.forward(req, res, target.sandbox, target.path, target.port);
    return true;
  }

  /**
   * An upgrade request (a WebSocket) on a proxy path: tunnelled to the sandbox's port as bytes
   * both ways once the sandbox's server answers; false when it is not a proxy path.
   */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const target = this.resolve(req.url ?? "");
    if (!target) return false;
    if (target instanceof AgentError) {
      refuseUpgrade(socket, httpStatus[target.code], {
        code: target.code,
        message: target.message,
      });
      return true;
    }
    const [host, envdPort] = splitHostPort(target.sandbox.envdAddress);
    const port = target.port ?? envdPort;
    const headers =
      target.port === undefined
        ? envdHeaders(req.headers, target.sandbox.envdAccessToken)
        : serviceHeaders(req.headers);
    const release = this.opts.onActivity(target.sandbox.id);
    tunnelUpgrade(req, socket, head, { host, port, path: target.path, headers }, (err) => {
      this.opts.logger.warn(
        { sandboxId: target.sandbox.id, port, err: err.message },
        "upgrade tunnel: sandbox port unreachable",
      );
      return unreachableMessage(target.sandbox.id, target.port, err);
    }).once("close", release);
    return true;
  }

  /** The running sandbox and path a proxy URL names; an AgentError to answer; undefined: not ours. */
  private resolve(
    url: string,
  ): { sandbox: SandboxInfo; path: string; port?: number } | AgentError | undefined {
    const target = parseProxyPath(url);
    if (!target) return undefined;
    if (!isSandboxId(target.id)) {
      return new AgentError("invalid_argument", `invalid sandbox id ${JSON.stringify(target.id)}`);
    }
    let sandbox: SandboxInfo;
    try {
      sandbox = this.opts.lookup(target.id);
    } catch (err) {
      return AgentError.from(err);
    }
    if (sandbox.state !== "running") {
      return new AgentError(
        "failed_precondition",
        `sandbox ${sandbox.id} is ${sandbox.state}, not running`,
      );
    }
    if (target.port !== undefined && (target.port < 1 || target.port > 65_535)) {
      return new AgentError("invalid_argument", `invalid port ${target.port}`);
    }
    return { sandbox, path: target.path, ...(target.port !== undefined && { port: target.port }) };
  }

  close(): void {
    this.agent.destroy();
  }

  /**
   * For a caller in this process (single-host mode's server): the request a proxy URL would
   * forward to the sandbox, made as `forward` makes it (same lookup, headers, connections and
   * activity) without the loopback HTTP hop to this proxy, the costliest part of a transfer.
   * Undefined when the HTTP path must answer instead: not a proxy path, no running sandbox
   * (its error), or an upgrade (tunnelled as bytes).
   */
  request(
    url: string,
    options: { method: string; headers: http.OutgoingHttpHeaders; signal?: AbortSignal },
  ): http.ClientRequest | undefined {
    const headers: IncomingHttpHeaders = {};
    for (const [name, value] of Object.entries(options.headers)) {
      if (value !== undefined) headers[name.toLowerCase()] = value as string | string[];
    }
    if (headers.upgrade) return undefined;
    const target = this.resolve(url);
    if (!target || target instanceof AgentError) return undefined;
    const upstream = this.upstream(target.sandbox, target.path, options.method, headers, {
      ...(target.port !== undefined && { servicePort: target.port }),
      ...(options.signal && { signal: options.signal }),
    });
    const release = once(this.opts.onActivity(target.sandbox.id));
    upstream.once("close", release);
    upstream.once("response", (res) => res.once("close", release));
    return upstream;
  }

  /** A request to the sandbox's envd (or a service port of it) over the keep-alive pool. */
  private upstream(
    sandbox: SandboxInfo,
    path: string,
    method: string | undefined,
    headers: IncomingHttpHeaders,
    options: { servicePort?: number; signal?: AbortSignal } = {},
  ): http.ClientRequest {
    const [host, envdPort] = splitHostPort(sandbox.envdAddress);
    return http.request({
      agent: this.agent,
      host,
      port: options.servicePort ?? envdPort,
      method,
      path,
      // envd's token never reaches another port: that is a service the sandbox's code runs.
      headers:
        options.servicePort === undefined
          ? envdHeaders(headers, sandbox.envdAccessToken)
          : serviceHeaders(headers),
      ...(options.signal && { signal: options.signal }),
    });
  }

  private forward(
    req: ProxyRequest,
    res: ProxyResponse,
    sandbox: SandboxInfo,
    path: string,
    servicePort?: number,
  ) {
    const upstream = this.upstream(
      sandbox,
      path,
      req.method,
      req.headers,
      servicePort === undefined ? {} : { servicePort },
    );
    upstream.on("response", (up) => {
      // The socket itself (HTTP/2 frames are batched already).
      const batch = corkEachTurn(res instanceof http.ServerResponse ? res.socket : null);
      res.writeHead(up.statusCode ?? 502, forwardHeaders(up.headers));
      // Headers go out now even if no body follows for a while (a quiet process's stream)…
      batch();
      (res as http.ServerResponse).flushHeaders?.();
      // …and each chunk as it comes (Connect server streams), never held past this turn.
      up.on("data", batch);
      up.pipe(res as NodeJS.WritableStream, { end: false });
      endRelay(up, upstream, req, res);
      // envd's side broke mid-body: the client must see a broken response, not a short one.
      up.once("close", () => {
        if (!up.complete) res.destroy();
      });
    });
    upstream.on("error", (err) => {
      if (!res.headersSent) {
        this.opts.logger.warn({ sandboxId: sandbox.id, err: err.message }, "envd proxy error");
        sendError(
          res,
          new AgentError("unavailable", unreachableMessage(sandbox.id, servicePort, err)),
          req.headers["content-type"],
        );
      } else {
        res.destroy(err);
      }
    });
    // stream.pipe rather than pipeline: pipeline's per-call AbortController and the AbortError it
    // builds (stack trace and all) on every completion were a tenth of the proxy's CPU per call.
    (req as NodeJS.ReadableStream).pipe(upstream);
    req.on("error", (err) => upstream.destroy(err));
    res.on("error", () => upstream.destroy());
    // The client went away before the exchange ended: the upstream call must not linger.
    res.once("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
  }
}

/** `fn` to be called at most once. */
function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    fn();
  };
}

/** envd's per-sandbox access token header. */
const ACCESS_TOKEN_HEADER = "x-access-token";

/** Who envd should act as, for callers whose `Authorization` carries the agent's own token. */
export const ENVD_USER_HEADER = "x-wrenn-envd-user";

/**
 * The agent's own credentials (Bearer) never reach the sandbox, nor does a client's
 * X-Access-Token (replaced by the sandbox's); envd's user selection does:
 * `Authorization: Basic <user>:` passes through, and `X-Wrenn-Envd-User` becomes it.
 */
export function envdHeaders(
  headers: IncomingHttpHeaders,
  accessToken: string | undefined,
): http.OutgoingHttpHeaders {
  const out = forwardHeaders(headers, ["authorization", ENVD_USER_HEADER, ACCESS_TOKEN_HEADER]);
  // envd's token is the sandbox's own, whatever the client sent.
  if (accessToken) out[ACCESS_TOKEN_HEADER] = accessToken;
  const user = headers[ENVD_USER_HEADER];
  const auth = headers.authorization;
  if (typeof user === "string" && user) {
    out.authorization = `Basic ${Buffer.from(`${user}:`).toString("base64")}`;
  } else if (auth && /^basic\s/i.test(auth)) {
    out.authorization = auth;
  }
  return out;
}

/** For a sandbox's own service: the caller's headers, its `Authorization` restored. */
export function serviceHeaders(headers: IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out = forwardHeaders(headers, [
    "authorization",
    ACCESS_TOKEN_HEADER,
    ENVD_USER_HEADER,
    FORWARDED_AUTHORIZATION_HEADER,
  ]);
  const auth = headers[FORWARDED_AUTHORIZATION_HEADER];
  if (typeof auth === "string" && auth) out.authorization = auth;
  return out;
}

function forwardHeaders(
  headers: IncomingHttpHeaders,
  drop: readonly string[] = [],
): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  const connectionTokens = String(headers.connection ?? "")
    .split(",")
    .map((t) => t.trim().toLowerCase());
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name.startsWith(":")) continue;
    if (HOP_BY_HOP.has(name) || connectionTokens.includes(name) || drop.includes(name)) continue;
    out[name] = value;
  }
  return out;
}

export function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  return [address.slice(0, i), Number(address.slice(i + 1))];
}

export const httpStatus: Record<AgentError["code"], number> = {
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 409,
  resource_exhausted: 429,
  unavailable: 502,
  unauthenticated: 401,
  insufficient_storage: 507,
  internal: 500,
};

const endStream = createEndStreamSerialization(undefined);

/**
 * The agent's JSON error body: `{ code, message }` with the matching HTTP status. A Connect
 * stream call (`contentType` application/connect+…) gets it as Connect's end-of-stream error
 * instead, as envd would send it, with the agent's exact code in its metadata as on the agent's
 * RPCs: Connect clients read a stream's error only from there, and would otherwise see a bare
 * HTTP status (409 reads as "unknown").
 */
export function sendError(res: ProxyResponse, err: AgentError, contentType?: string): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  if (contentType?.startsWith("application/connect+")) {
    const error = err.toConnectError();
    const body = encodeEnvelope(
      endStreamFlag,
      endStream.serialize({ metadata: new Headers(), error }),
    );
    res.writeHead(200, { "content-type": contentType, "content-length": body.byteLength });
    res.end(body);
    return;
  }
  const body = JSON.stringify({ code: err.code, message: err.message });
  res.writeHead(httpStatus[err.code], {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}
