import { createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ServerError } from "../../errors.js";
import type { HostView, Services } from "../../service/index.js";
import type { App, AppEnv } from "../env.js";
import { errorResponses } from "../error-handling.js";
import {
  HostCredentialsSchema,
  HostDeleteQuery,
  HostHeartbeatAnswerSchema,
  HostHeartbeatSchema,
  HostIdParams,
  HostListSchema,
  HostRefreshSchema,
  HostRegisterSchema,
  HostSchema,
  HostTokenCreateSchema,
  HostTokenSchema,
} from "../host-schemas.js";
import { BEARER, requireUserOrApiKey } from "../middleware.js";

const tags = ["hosts"];
const security: Record<string, string[]>[] = [{ apiKeyAuth: [] }, { bearerAuth: [] }];
const json = <T>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

function format({ host: h, detailed, usage }: HostView) {
  return {
    id: h.id,
    state: h.state,
    shared: h.teamId === null,
    team_id: h.teamId,
    address: detailed ? h.address : null,
    hostname: h.hostname,
    version: h.version,
    runtimes: h.runtimes,
    runtime_details: h.runtimeDetails,
    default_runtime: h.defaultRuntime,
    capacity: detailed
      ? {
          vcpus: h.capacity.vcpus ?? 0,
          memory_mb: h.capacity.memory_mb ?? 0,
          disk_mb: h.capacity.disk_mb ?? 0,
        }
      : null,
    usage,
    created_at: h.createdAt,
    last_seen_at: h.lastSeenAt,
  };
}

/** The team behind a request authenticated by API key or by login token. */
function teamOf(c: Context<AppEnv>) {
  return c.get("team") ?? c.get("user");
}

export function registerHostRoutes(app: App, services: Services): void {
  const { hosts, hostEnrollment } = services;
  const middleware = requireUserOrApiKey(services);

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/hosts/tokens",
      tags,
      summary: "A one-time token that registers an agent as a host of this team (or shared)",
      security,
      middleware,
      request: {
        body: {
          content: { "application/json": { schema: HostTokenCreateSchema } },
          required: false,
        },
      },
      responses: {
        201: json(HostTokenSchema, "The token (shown once) and when it expires"),
        ...errorResponses("invalid_argument", "unauthenticated", "permission_denied"),
      },
    }),
    async (c) => {
      const body = (await c.req.json().catch(() => ({}))) as unknown;
      const parsed = HostTokenCreateSchema.safeParse(body ?? {});
      if (!parsed.success)
        throw new ServerError(
          "invalid_argument",
          parsed.error.issues[0]?.message ?? "invalid body",
        );
      const { shared, ttl_sec } = parsed.data;
      const token = await hostEnrollment.createToken(teamOf(c), {
        ...(shared !== undefined ? { shared } : {}),
        ...(ttl_sec !== undefined ? { ttlSec: ttl_sec } : {}),
      });
      return c.json(token, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/hosts/register",
      tags,
      summary: "An agent joins with a one-time token (called by `wrenn agent start`)",
      request: { body: { content: { "application/json": { schema: HostRegisterSchema } } } },
      responses: {
        201: json(HostCredentialsSchema, "The host's credentials"),
        ...errorResponses("invalid_argument", "unauthenticated", "conflict"),
      },
    }),
    async (c) => {
      const b = c.req.valid("json");
      const issued = await hostEnrollment.register({
        token: b.token,
        hostId: b.host_id,
        instanceId: b.instance_id,
        advertiseUrl: b.advertise_url,
        hostname: b.hostname,
        version: b.version,
        runtimes: b.runtimes,
        defaultRuntime: b.default_runtime,
        runtimeDetails: b.runtime_details ?? [],
        capacity: b.capacity,
        sandboxCidr: b.sandbox_cidr,
        agentKey: b.agent_key,
        ...(b.tls_cert ? { tlsCert: b.tls_cert } : {}),
      });
      return c.json(issued, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/hosts/refresh",
      tags,
      summary: "A new host JWT and refresh token (rotation; a reused refresh token revokes all)",
      request: { body: { content: { "application/json": { schema: HostRefreshSchema } } } },
      responses: {
        200: json(HostCredentialsSchema, "The host's new credentials"),
        ...errorResponses("invalid_argument", "unauthenticated"),
      },
    }),
    async (c) => c.json(await hostEnrollment.refresh(c.req.valid("json").refresh_token), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/hosts/heartbeat",
      tags,
      summary: "An agent reports in with its host JWT",
      security: [{ bearerAuth: [] }],
      request: { body: { content: { "application/json": { schema: HostHeartbeatSchema } } } },
      responses: {
        200: json(HostHeartbeatAnswerSchema, "What the server expects of the host"),
        ...errorResponses("invalid_argument", "unauthenticated", "permission_denied", "conflict"),
      },
    }),
    async (c) => {
      const jwt = BEARER.exec(c.req.header("authorization") ?? "")?.[1];
      if (!jwt) throw new ServerError("unauthenticated", "send Authorization: Bearer <host JWT>");
      const host = await hostEnrollment.authenticate(jwt);
      const b = c.req.valid("json");
      const answer = await hostEnrollment.heartbeat(host, {
        hostId: b.host_id,
        instanceId: b.instance_id,
        usage: b.usage ?? {},
        ...(b.advertise_url ? { advertiseUrl: b.advertise_url } : {}),
      });
      return c.json(answer as { host_state: "ready" | "draining"; heartbeat_sec: number }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/hosts",
      tags,
      summary: "The team's own hosts and the shared ones",
      security,
      middleware,
      responses: {
        200: json(HostListSchema, "The hosts"),
        ...errorResponses("unauthenticated"),
      },
    }),
    async (c) => c.json({ hosts: (await hosts.list(teamOf(c).teamId)).map(format) }, 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/hosts/{id}",
      tags,
      summary: "One host (another team's host is not found)",
      security,
      middleware,
      request: { params: HostIdParams },
      responses: {
        200: json(HostSchema, "The host"),
        ...errorResponses("unauthenticated", "not_found"),
      },
    }),
    async (c) => c.json(format(await hosts.get(teamOf(c).teamId, c.req.valid("param").id)), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/hosts/{id}/drain",
      tags,
      summary: "No new sandboxes on this host; those on it keep running",
      security,
      middleware,
      request: { params: HostIdParams },
      responses: {
        200: json(HostSchema, "The host, draining"),
        ...errorResponses("unauthenticated", "permission_denied", "not_found"),
      },
    }),
    async (c) => c.json(format(await hosts.drain(teamOf(c).teamId, c.req.valid("param").id)), 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/hosts/{id}",
      tags,
      summary: "Remove a host and revoke its credentials (409 while it has sandboxes)",
      security,
      middleware,
      request: { params: HostIdParams, query: HostDeleteQuery },
      responses: {
        204: { description: "Removed" },
        ...errorResponses("unauthenticated", "permission_denied", "not_found", "conflict"),
      },
    }),
    async (c) => {
      await hosts.remove(
        teamOf(c).teamId,
        c.req.valid("param").id,
        c.req.valid("query").force === "true",
      );
      return c.body(null, 204);
    },
  );
}
