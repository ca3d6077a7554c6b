import type { Context } from "hono";
import { Hono } from "hono";
import type { Logger } from "pino";
import { z } from "zod";
import type { SandboxRecord, SandboxState } from "../../db/index.js";
import { ServerError } from "../../errors.js";
import type { Services } from "../../service/index.js";
import type { AppEnv } from "../env.js";
import type { E2bAccessTokens } from "./access-tokens.js";
import { e2bError, e2bErrorHandler } from "./errors.js";
import {
  E2bNetworkRules,
  E2bNetworkUpdateBody,
  e2bNetwork,
  refuseUnsupportedNetwork,
} from "./network.js";
import {
  E2B_DEFAULT_TIMEOUT_SEC,
  parseMetadataFilter,
  sandboxCreated,
  sandboxDetail,
  sandboxListed,
  sandboxMetric,
} from "./shapes.js";

export interface E2bApiOptions {
  services: Services;
  tokens: E2bAccessTokens;
  /** `WRENN_DOMAIN`: what sandboxes' `domain` says (null: the client's E2B_DOMAIN applies). */
  domain: string | null;
  logger: Logger;
}

const StringMap = z.record(z.string(), z.string());
const Timeout = z
  .number()
  .int()
  .min(0)
  .max(30 * 24 * 3600);

/** E2B's names for templates Wrenn has under its own (`@e2b/code-interpreter`'s default). */
const TEMPLATE_ALIASES: Record<string, string> = { "code-interpreter-v1": "code-interpreter" };

const CreateBody = z.object({
  templateID: z.string().min(1).default("base"),
  timeout: Timeout.optional(),
  metadata: StringMap.optional(),
  envVars: StringMap.optional(),
  autoPause: z.boolean().optional(),
  autoPauseMemory: z.boolean().optional(),
  autoResume: z.object({ enabled: z.boolean() }).partial().optional(),
  allow_internet_access: z.boolean().optional(),
  secure: z.boolean().optional(),
  network: E2bNetworkRules.extend({ allowPublicTraffic: z.boolean().optional() })
    .passthrough()
    .optional(),
  mcp: z.unknown().optional(),
  iam: z
    .object({ tokens: z.record(z.string(), z.unknown()).optional() })
    .passthrough()
    .optional(),
  volumeMounts: z.array(z.unknown()).optional(),
});

const TimeoutBody = z.object({ timeout: Timeout });
const ConnectBody = z.object({ timeout: Timeout.optional() }).passthrough();

async function bodyOf<T extends z.ZodTypeAny>(c: Context, schema: T): Promise<z.infer<T>> {
  const text = await c.req.text();
  let json: unknown = {};
  if (text.trim()) {
    try {
      json = JSON.parse(text);
    } catch {
      throw new ServerError("invalid_argument", "body: not valid JSON");
    }
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ServerError(
      "invalid_argument",
      `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}

/** What E2B's create asks for that Wrenn cannot do yet: refused, never silently ignored. */
function refuseUnsupported(body: z.infer<typeof CreateBody>): void {
  const unsupported: string[] = [];
  const network = body.network as Record<string, unknown> | undefined;
  const rules = network?.rules;
  if (rules && typeof rules === "object" && Object.keys(rules).length > 0)
    unsupported.push("network.rules");
  if (network?.egressProxy !== undefined) unsupported.push("network.egressProxy");
  if (network?.maskRequestHost) unsupported.push("network.maskRequestHost");
  if (Array.isArray(network?.httpsPorts) && network.httpsPorts.length > 0)
    unsupported.push("network.httpsPorts");
  if (Object.keys(body.iam?.tokens ?? {}).length > 0) unsupported.push("iam.tokens");
  // Wrenn's pause keeps memory (a frozen cgroup, a saved microVM): no filesystem-only pause.
  if (body.autoPauseMemory === false) unsupported.push("autoPauseMemory: false");
  if (body.mcp !== undefined) unsupported.push("mcp");
  if (body.volumeMounts?.length) unsupported.push("volumeMounts");
  if (unsupported.length > 0) {
    throw new ServerError(
      "invalid_argument",
      `not supported by this Wrenn server yet: ${unsupported.join(", ")}`,
    );
  }
}

/**
 * E2B's control-plane REST contract (the wire facts in shared/reference/e2b-api.md), beside `/v1`:
 * handlers only translate shapes; the services are the ones Wrenn's own API uses.
 */
export function e2bApi(options: E2bApiOptions): Hono<AppEnv> {
  const { services, tokens, domain } = options;
  const app = new Hono<AppEnv>();
  app.onError(e2bErrorHandler(options.logger));

  const team = async (c: Context<AppEnv>): Promise<string> => {
    const key = c.req.header("x-api-key")?.trim();
    if (!key) throw new ServerError("unauthenticated", "send X-API-KEY: <key>");
    return (await services.apiKeys.authenticate(key)).teamId;
  };
  const ctx = (record: SandboxRecord) => ({
    domain,
    accessToken: tokens.tokenFor(record.id),
    trafficAccessToken: record.publicTraffic ? null : tokens.trafficTokenFor(record.id),
  });

  const create = async (c: Context<AppEnv>) => {
    const teamId = await team(c);
    const body = await bodyOf(c, CreateBody);
    refuseUnsupported(body);
    const record = await services.sandboxes.create(
      teamId,
      {
        template: TEMPLATE_ALIASES[body.templateID] ?? body.templateID,
        timeoutSec: body.timeout ?? E2B_DEFAULT_TIMEOUT_SEC,
        ...(body.metadata ? { metadata: body.metadata } : {}),
        ...(body.envVars ? { envs: body.envVars } : {}),
        ...e2bNetwork(body.allow_internet_access, body.network),
        ...(body.network?.allowPublicTraffic !== undefined
          ? { publicTraffic: body.network.allowPublicTraffic }
          : {}),
        ...(body.autoResume?.enabled !== undefined ? { autoResume: body.autoResume.enabled } : {}),
      },
      { signal: c.req.raw.signal },
    );
    return c.json(sandboxCreated(record, ctx(record)), 201);
  };
  app.post("/sandboxes", create);
  app.post("/v2/sandboxes", create);

  // Running: 200 (the timeout may only grow). Paused: resumed, 201.
  const connect = async (c: Context<AppEnv>) => {
    const teamId = await team(c);
    const id = c.req.param("id") as string;
    const { timeout } = await bodyOf(c, ConnectBody);
    const record = await services.sandboxes.get(teamId, id).catch(() => undefined);
    if (!record || record.state === "stopped") {
      return e2bError(c, 404, `sandbox ${JSON.stringify(id)} not found`);
    }
    if (record.state === "paused") {
      const resumed = await services.sandboxes.resume(teamId, id, {
        timeoutSec: timeout ?? Math.max(record.timeoutSec, E2B_DEFAULT_TIMEOUT_SEC),
      });
      return c.json(sandboxCreated(resumed, ctx(resumed)), 201);
    }
    const wanted = timeout ?? E2B_DEFAULT_TIMEOUT_SEC;
    const current =
      record.timeoutSec > 0 && record.timeoutSec < wanted
        ? await services.sandboxes.setTimeout(teamId, id, wanted)
        : record;
    return c.json(sandboxCreated(current, ctx(current)), 200);
  };
  app.post("/sandboxes/:id/connect", connect);
  app.post("/v2/sandboxes/:id/connect", connect);

  // The older resume: 201, or 409 when the sandbox is running already.
  app.post("/sandboxes/:id/resume", async (c) => {
    const teamId = await team(c);
    const id = c.req.param("id");
    const { timeout } = await bodyOf(c, ConnectBody);
    const record = await services.sandboxes.get(teamId, id);
    if (record.state === "stopped") return e2bError(c, 404, `sandbox ${id} not found`);
    if (record.state !== "paused") return e2bError(c, 409, `sandbox ${id} is already running`);
    const resumed = await services.sandboxes.resume(
      teamId,
      id,
      timeout !== undefined ? { timeoutSec: timeout } : {},
    );
    return c.json(sandboxCreated(resumed, ctx(resumed)), 201);
  });

  app.get("/sandboxes/:id", async (c) => {
    const record = await services.sandboxes.get(await team(c), c.req.param("id"));
    if (record.state === "stopped") return e2bError(c, 404, `sandbox ${record.id} not found`);
    return c.json(sandboxDetail(record, ctx(record)), 200);
  });

  const list = (v2: boolean) => async (c: Context<AppEnv>) => {
    const teamId = await team(c);
    const q = c.req.query();
    let metadata: Record<string, string> | undefined;
    try {
      metadata = q.metadata ? parseMetadataFilter(q.metadata) : undefined;
    } catch {
      throw new ServerError("invalid_argument", "metadata: not a valid query string");
    }
    const states = (q.state ?? (v2 ? "running,paused" : "running"))
      .split(",")
      .filter(Boolean)
      .map((s): SandboxState => {
        if (s !== "running" && s !== "paused")
          throw new ServerError(
            "invalid_argument",
            `state: ${JSON.stringify(s)} is not running or paused`,
          );
        return s;
      });
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      throw new ServerError("invalid_argument", "limit: must be an integer in [1, 100]");
    }
    const page = await services.sandboxes.list(teamId, {
      states,
      limit,
      ...(metadata ? { metadata } : {}),
      ...(q.nextToken ? { cursor: q.nextToken } : {}),
    });
    if (page.nextCursor) c.header("x-next-token", page.nextCursor);
    c.header("access-control-expose-headers", "X-Next-Token");
    return c.json(page.items.map(sandboxListed), 200);
  };
  app.get("/sandboxes", list(false));
  app.get("/v2/sandboxes", list(true));

  app.delete("/sandboxes/:id", async (c) => {
    await services.sandboxes.destroy(await team(c), c.req.param("id"));
    return c.body(null, 204);
  });

  // E2B's 0 is "the time is up now" (Wrenn's own 0 is "never"): what Wrenn's timeout does, now.
  app.post("/sandboxes/:id/timeout", async (c) => {
    const teamId = await team(c);
    const { timeout } = await bodyOf(c, TimeoutBody);
    if (timeout === 0) await services.sandboxes.pause(teamId, c.req.param("id"));
    else await services.sandboxes.setTimeout(teamId, c.req.param("id"), timeout);
    return c.body(null, 204);
  });

  app.post("/sandboxes/:id/pause", async (c) => {
    const teamId = await team(c);
    const id = c.req.param("id");
    const record = await services.sandboxes.get(teamId, id);
    if (record.state === "stopped") return e2bError(c, 404, `sandbox ${id} not found`);
    if (record.state === "paused") return e2bError(c, 409, `sandbox ${id} is already paused`);
    await services.sandboxes.pause(teamId, id);
    return c.body(null, 204);
  });

  // E2B answers the samples it kept (none yet: []); Wrenn samples the running sandbox now, so a
  // paused one has none to give. E2B never refuses a paused sandbox here.
  app.get("/sandboxes/:id/metrics", async (c) => {
    const teamId = await team(c);
    const id = c.req.param("id");
    const record = await services.sandboxes.get(teamId, id);
    if (record.state === "stopped") return e2bError(c, 404, `sandbox ${id} not found`);
    if (record.state === "paused") return c.json([], 200);
    return c.json([sandboxMetric(await services.metrics.get(teamId, id))], 200);
  });

  // E2B's sandbox.updateNetwork: the same live change as Wrenn's PUT /v1/sandboxes/{id}/network.
  app.put("/sandboxes/:id/network", async (c) => {
    const teamId = await team(c);
    const body = await bodyOf(c, E2bNetworkUpdateBody);
    refuseUnsupportedNetwork(body);
    const network = e2bNetwork(body.allow_internet_access, body);
    await services.sandboxes.setNetwork(teamId, c.req.param("id"), network);
    return c.body(null, 204);
  });
  return app;
}
