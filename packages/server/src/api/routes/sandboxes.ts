import { createRoute } from "@hono/zod-openapi";
import type { SandboxRecord, SandboxState } from "../../db/index.js";
import { ServerError } from "../../errors.js";
import type { Services } from "../../service/index.js";
import type { E2bAccessTokens } from "../e2b/index.js";
import { SandboxNetworkUpdateSchema } from "../egress-rules.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireApiKey } from "../middleware.js";
import {
  IdParams,
  SANDBOX_STATE_VALUES,
  SandboxCreatedSchema,
  SandboxCreateSchema,
  SandboxForkResultSchema,
  SandboxForkSchema,
  SandboxListQuery,
  SandboxListSchema,
  SandboxResumeSchema,
  SandboxSchema,
  SandboxTimeoutSchema,
} from "../schemas.js";

const security = [{ apiKeyAuth: [] }];
const tags = ["sandboxes"];
const sandboxResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: SandboxSchema } },
});

function format(s: SandboxRecord) {
  return {
    id: s.id,
    template: s.template,
    state: s.state,
    host_id: s.hostId,
    runtime: s.runtime,
    vcpus: s.vcpus,
    memory_mb: s.memoryMb,
    disk_size_mb: s.diskSizeMb,
    timeout_sec: s.timeoutSec,
    metadata: s.metadata,
    network: {
      allow_internet_access: s.network?.allowInternetAccess ?? true,
      allow_out: s.network?.allowOut ?? [],
      deny_out: s.network?.denyOut ?? [],
    },
    created_at: s.createdAt,
    updated_at: s.updatedAt,
    last_active_at: s.lastActiveAt,
    stopped_at: s.stoppedAt,
    allow_public_traffic: s.publicTraffic,
    auto_resume: s.autoResume,
  };
}

const LISTED_BY_DEFAULT = SANDBOX_STATE_VALUES.filter((s) => s !== "stopped");

function parseStates(raw: string | undefined): SandboxState[] {
  if (raw === undefined || raw === "") return [...LISTED_BY_DEFAULT];
  const states = raw.split(",").map((s) => s.trim());
  for (const state of states) {
    if (!(SANDBOX_STATE_VALUES as readonly string[]).includes(state)) {
      throw new ServerError("invalid_argument", `state: unknown state ${JSON.stringify(state)}`);
    }
  }
  return states as SandboxState[];
}

/** `metadata=` holds URL-encoded `key=value` pairs (as E2B clients send it). */
function parseMetadata(raw: string | undefined): Record<string, string> | undefined {
  if (!raw) return undefined;
  const pairs = Object.fromEntries(new URLSearchParams(raw));
  for (const [key, value] of Object.entries(pairs)) {
    if (/\p{Cc}/u.test(key + value)) {
      throw new ServerError(
        "invalid_argument",
        "metadata: keys and values must not contain control characters",
      );
    }
  }
  return pairs;
}

export function registerSandboxRoutes(app: App, services: Services, tokens: E2bAccessTokens): void {
  /** A sandbox with the token its ports need when it takes no public traffic. */
  const withTrafficToken = (s: SandboxRecord) => {
    // Added to the object format made, not spread into a copy (a profile put 4-5% of a GET's CPU
    // in the copy).
    const body: ReturnType<typeof format> & { traffic_access_token?: string | null } = format(s);
    body.traffic_access_token = s.publicTraffic ? null : tokens.trafficTokenFor(s.id);
    return body as typeof body & { traffic_access_token: string | null };
  };
  const middleware = requireApiKey(services);
  const sandboxes = services.sandboxes;
  const action = (name: string, summary: string) =>
    createRoute({
      method: "post",
      path: `/v1/sandboxes/{id}/${name}`,
      tags,
      summary,
      security,
      middleware,
      request: { params: IdParams },
      responses: {
        200: sandboxResponse("The sandbox after the operation"),
        ...errorResponses("unauthenticated", "not_found", "failed_precondition", "unavailable"),
      },
    });

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes",
      tags,
      summary: "Create a sandbox from a template or a team snapshot",
      security,
      middleware,
      request: {
        body: { content: { "application/json": { schema: SandboxCreateSchema } }, required: true },
      },
      responses: {
        201: {
          description: "Created and running",
          content: { "application/json": { schema: SandboxCreatedSchema } },
        },
        ...errorResponses(
          "invalid_argument",
          "unauthenticated",
          "not_found",
          "resource_exhausted",
          "unavailable",
        ),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const created = await sandboxes.create(
        c.get("team").teamId,
        {
          ...(body.template !== undefined ? { template: body.template } : {}),
          ...(body.snapshot !== undefined ? { snapshot: body.snapshot } : {}),
          ...(body.vcpus !== undefined ? { vcpus: body.vcpus } : {}),
          ...(body.memory_mb !== undefined ? { memoryMb: body.memory_mb } : {}),
          ...(body.disk_size_mb !== undefined ? { diskSizeMb: body.disk_size_mb } : {}),
          ...(body.timeout_sec !== undefined ? { timeoutSec: body.timeout_sec } : {}),
          ...(body.metadata !== undefined ? { metadata: body.metadata } : {}),
          ...(body.envs !== undefined ? { envs: body.envs } : {}),
          ...(body.allow_internet_access !== undefined
            ? { allowInternetAccess: body.allow_internet_access }
            : {}),
          ...(body.allow_out !== undefined ? { allowOut: body.allow_out } : {}),
          ...(body.deny_out !== undefined ? { denyOut: body.deny_out } : {}),
          ...(body.allow_public_traffic !== undefined
            ? { publicTraffic: body.allow_public_traffic }
            : {}),
          ...(body.auto_resume !== undefined ? { autoResume: body.auto_resume } : {}),
          ...(body.host_id !== undefined ? { hostId: body.host_id } : {}),
          ...(body.runtime !== undefined ? { runtime: body.runtime } : {}),
        },
        { signal: c.req.raw.signal },
      );
      return c.json(withTrafficToken(created), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandboxes",
      tags,
      summary: "List the team's sandboxes in creation order, a page at a time",
      security,
      middleware,
      request: { query: SandboxListQuery },
      responses: {
        200: {
          description: "One page",
          content: { "application/json": { schema: SandboxListSchema } },
        },
        ...errorResponses("invalid_argument", "unauthenticated"),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const metadata = parseMetadata(query.metadata);
      const page = await sandboxes.list(c.get("team").teamId, {
        states: parseStates(query.state),
        ...(metadata ? { metadata } : {}),
        ...(query.limit !== undefined ? { limit: query.limit } : {}),
        ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
      });
      return c.json(
        { sandboxes: page.items.map(format), next_cursor: page.nextCursor ?? null },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}",
      tags,
      summary: "Get one sandbox",
      security,
      middleware,
      request: { params: IdParams },
      responses: {
        200: {
          description: "The sandbox, with the token its ports need when they are not public",
          content: { "application/json": { schema: SandboxCreatedSchema } },
        },
        ...errorResponses("unauthenticated", "not_found"),
      },
    }),
    async (c) =>
      c.json(
        withTrafficToken(await sandboxes.get(c.get("team").teamId, c.req.valid("param").id)),
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/sandboxes/{id}",
      tags,
      summary: "Destroy a sandbox and everything it had",
      security,
      middleware,
      request: { params: IdParams },
      responses: {
        204: { description: "Destroyed" },
        ...errorResponses("unauthenticated", "not_found", "unavailable"),
      },
    }),
    async (c) => {
      await sandboxes.destroy(c.get("team").teamId, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );

  app.openapi(action("pause", "Pause a running sandbox (memory kept)"), async (c) =>
    c.json(format(await sandboxes.pause(c.get("team").teamId, c.req.valid("param").id)), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/resume",
      tags,
      summary: "Resume a paused sandbox, optionally with a new timeout",
      security,
      middleware,
      request: {
        params: IdParams,
        body: { content: { "application/json": { schema: SandboxResumeSchema } }, required: false },
      },
      responses: {
        200: sandboxResponse("The running sandbox"),
        ...errorResponses(
          "invalid_argument",
          "unauthenticated",
          "not_found",
          "failed_precondition",
          "unavailable",
        ),
      },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const sandbox = await sandboxes.resume(
        c.get("team").teamId,
        c.req.valid("param").id,
        body.timeout_sec !== undefined ? { timeoutSec: body.timeout_sec } : {},
      );
      return c.json(format(sandbox), 200);
    },
  );

  app.openapi(action("ping", "Count as activity: resets the inactivity timer"), async (c) =>
    c.json(format(await sandboxes.ping(c.get("team").teamId, c.req.valid("param").id)), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/timeout",
      tags,
      summary: "Set the inactivity timeout (0 = never pause)",
      security,
      middleware,
      request: {
        params: IdParams,
        body: { content: { "application/json": { schema: SandboxTimeoutSchema } }, required: true },
      },
      responses: {
        200: sandboxResponse("The sandbox with its new timeout"),
        ...errorResponses(
          "invalid_argument",
          "unauthenticated",
          "not_found",
          "failed_precondition",
          "unavailable",
        ),
      },
    }),
    async (c) => {
      const sandbox = await sandboxes.setTimeout(
        c.get("team").teamId,
        c.req.valid("param").id,
        c.req.valid("json").timeout_sec,
      );
      return c.json(format(sandbox), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/v1/sandboxes/{id}/network",
      tags,
      summary: "Replace internet access and egress rules of a running or paused sandbox",
      security,
      middleware,
      request: {
        params: IdParams,
        body: {
          content: { "application/json": { schema: SandboxNetworkUpdateSchema } },
          required: true,
        },
      },
      responses: {
        200: sandboxResponse("The sandbox with its new network policy"),
        ...errorResponses(
          "invalid_argument",
          "unauthenticated",
          "not_found",
          "failed_precondition",
          "unavailable",
        ),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const sandbox = await sandboxes.setNetwork(c.get("team").teamId, c.req.valid("param").id, {
        allowInternetAccess: body.allow_internet_access ?? true,
        allowOut: body.allow_out ?? [],
        denyOut: body.deny_out ?? [],
      });
      return c.json(format(sandbox), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/fork",
      tags,
      summary:
        "Fork a running sandbox: new sandboxes with its files (microVMs: also its memory and processes) as they are now",
      security,
      middleware,
      request: {
        params: IdParams,
        body: { content: { "application/json": { schema: SandboxForkSchema } }, required: false },
      },
      responses: {
        201: {
          description: "The new sandboxes, running; the source keeps running",
          content: { "application/json": { schema: SandboxForkResultSchema } },
        },
        ...errorResponses(
          "invalid_argument",
          "unauthenticated",
          "permission_denied",
          "not_found",
          "failed_precondition",
          "resource_exhausted",
          "unavailable",
        ),
      },
    }),
    async (c) => {
      const body = c.req.valid("json") ?? {};
      const made = await services.forks.fork(
        c.get("team").teamId,
        c.req.valid("param").id,
        body.count ?? 1,
        { signal: c.req.raw.signal },
      );
      // Forks keep their source's allow_public_traffic: a private source's forks each need
      // a token of their own, given here as a create gives its sandbox's.
      return c.json(
        { sandboxes: made.sandboxes.map(withTrafficToken), source_pause_ms: made.sourcePauseMs },
        201,
      );
    },
  );
}
