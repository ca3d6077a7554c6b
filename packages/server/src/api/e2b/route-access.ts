import type { IncomingHttpHeaders } from "node:http";
import type { Logger } from "pino";
import type { SandboxRecord } from "../../db/index.js";
import type { AgentHost, Services } from "../../service/index.js";
import type { E2bAccessTokens } from "./access-tokens.js";

/** envd's port inside every sandbox (E2B's constant). */
export const ENVD_PORT = 49983;

/** E2B's header for a sandbox whose ports are not public (`allowPublicTraffic: false`). */
export const TRAFFIC_TOKEN_HEADER = "e2b-traffic-access-token";

export interface EnvdRoute {
  sandboxId: string;
  port: number;
}

export interface RouteAccessOptions {
  services: Services;
  tokens: E2bAccessTokens;
  /** `WRENN_DOMAIN`: `<port>-<id>.<domain>` host names route to that port of that sandbox. */
  domain: string | null;
  logger: Logger;
}

/** Where a routed request goes: the agent's proxy path for it, on the sandbox's host. */
export interface RouteTarget {
  record: SandboxRecord;
  host: AgentHost;
  port: number;
  /** `/sandboxes/<id>/envd<url>` or `/sandboxes/<id>/ports/<n><url>` on the agent. */
  path: string;
}

/** A refusal, answered in E2B's `{code, message}` shape (plus fields E2B's proxy adds). */
export interface RouteRefusal {
  status: number;
  message: string;
  extra?: Record<string, unknown>;
}

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

/**
 * The checks every routed request passes, HTTP and WebSocket alike, in E2B's order: envd (49983)
 * needs the sandbox's E2B access token (or a signed `/files` URL); another port of a sandbox
 * created with public traffic off needs its traffic token (403, as E2B's proxy answers);
 * a paused sandbox is resumed when it asked for that (`autoResume`), else 409 as E2B's proxy
 * says; an unknown or stopped one is 502 (its SDK reads that as "not running").
 */
export function createRouteAccess(options: RouteAccessOptions) {
  const { services, tokens, logger } = options;
  // Concurrent requests to one paused sandbox share one resume.
  const resuming = new Map<string, Promise<SandboxRecord>>();

  const resume = (record: SandboxRecord): Promise<SandboxRecord> => {
    let pending = resuming.get(record.id);
    if (!pending) {
      logger.info({ sandboxId: record.id }, "sandbox route: auto-resuming a paused sandbox");
      pending = services.sandboxes
        .resume(record.teamId, record.id)
        .finally(() => resuming.delete(record.id));
      resuming.set(record.id, pending);
    }
    return pending;
  };

  return async function resolve(
    route: EnvdRoute,
    headers: IncomingHttpHeaders,
    url: string,
    method: string,
  ): Promise<RouteTarget | RouteRefusal> {
    const header = (name: string) => {
      const value = headers[name];
      return typeof value === "string" ? value : undefined;
    };
    if (
      route.port === ENVD_PORT &&
      !tokens.verify(route.sandboxId, header("x-access-token")) &&
      // E2B's uploadUrl/downloadUrl carry a signature instead.
      !tokens.verifySignature(route.sandboxId, new URL(url, "http://sandbox"), method)
    ) {
      return {
        status: 401,
        message: "X-Access-Token (or a /files URL signature): missing or not this sandbox's",
      };
    }
    let record = await services.sandboxes.findLive(route.sandboxId);
    if (!record) return { status: 502, message: `sandbox ${route.sandboxId} is not running` };
    if (
      route.port !== ENVD_PORT &&
      !record.publicTraffic &&
      !tokens.verifyTraffic(record.id, header(TRAFFIC_TOKEN_HEADER))
    ) {
      return {
        status: 403,
        message: `sandbox ${record.id} does not take public traffic: send ${TRAFFIC_TOKEN_HEADER} (its trafficAccessToken)`,
      };
    }
    if (record.state === "paused") {
      if (!record.autoResume) {
        return {
          status: 409,
          message: `sandbox ${record.id} is paused; resume it first (connect), or create it with auto-resume`,
          extra: { sandboxId: record.id, canAutoResume: false },
        };
      }
      try {
        record = await resume(record);
      } catch (err) {
        return {
          status: 502,
          message: `sandbox ${record.id} could not be resumed: ${(err as Error).message}`,
        };
      }
    }
    let host: AgentHost;
    try {
      host = await services.sandboxes.reachable(record.teamId, record.id);
    } catch (err) {
      return { status: 502, message: `sandbox ${record.id}: ${(err as Error).message}` };
    }
    const prefix =
      route.port === ENVD_PORT
        ? `/sandboxes/${record.id}/envd`
        : `/sandboxes/${record.id}/ports/${route.port}`;
    return { record, host, port: route.port, path: `${prefix}${url}` };
  };
}

export type RouteAccess = ReturnType<typeof createRouteAccess>;
