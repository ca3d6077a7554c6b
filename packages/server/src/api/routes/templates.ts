import { createRoute, z } from "@hono/zod-openapi";
import { stream } from "hono/streaming";
import { ServerError } from "../../errors.js";
import { ndjsonBuildLog, type Recipe, SAFE_NAME, type Services } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireApiKey } from "../middleware.js";

const security = [{ apiKeyAuth: [] }];
const tags = ["templates"];

/** A build's request (recipe and copied files, base64) may be this large. */
export const TEMPLATE_BUILD_BODY_LIMIT = 64 * 1024 * 1024;

const Name = z
  .string()
  .regex(SAFE_NAME, "must be 1-64 of letters, digits, '.', '_', '-' (no leading '.')");
const Packages = z.array(z.string().min(1).max(214)).min(1).max(500);
const User = z
  .string()
  .min(1)
  .max(32)
  .regex(/^[a-z_][a-z0-9_-]*$/, "must be a user name");
const Envs = z.record(
  z
    .string()
    .min(1)
    .max(256)
    .regex(/^[^=\0]+$/),
  z.string().max(32 * 1024),
);
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, "must be a sha256 in lowercase hex");
const Path = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes("\0"), "must not contain NUL");

const ReadySchema = z.union([
  z.object({ port: z.number().int().min(1).max(65535) }).strict(),
  z.object({ file: Path }).strict(),
  z.object({ cmd: z.string().min(1).max(4096) }).strict(),
]);

const StepSchema = z.discriminatedUnion("type", [
  z
    .object({
      type: z.literal("run"),
      cmd: z
        .string()
        .min(1)
        .max(64 * 1024),
      user: User.optional(),
    })
    .strict(),
  z.object({ type: z.literal("apt_install"), packages: Packages }).strict(),
  z.object({ type: z.literal("pip_install"), packages: Packages }).strict(),
  z
    .object({ type: z.literal("npm_install"), packages: Packages, global: z.boolean().optional() })
    .strict(),
  z
    .object({
      type: z.literal("copy"),
      dest: Path,
      user: User.optional(),
      files: z
        .array(
          z
            .object({
              path: z.string().max(4096),
              sha256: Sha256,
              mode: z.number().int().min(0).max(0o7777).optional(),
            })
            .strict(),
        )
        .min(1)
        .max(10_000),
    })
    .strict(),
  z.object({ type: z.literal("env"), envs: Envs }).strict(),
  z.object({ type: z.literal("workdir"), path: Path }).strict(),
  z.object({ type: z.literal("user"), name: User }).strict(),
  z
    .object({
      type: z.literal("start"),
      cmd: z
        .string()
        .min(1)
        .max(64 * 1024),
      ready: ReadySchema.optional(),
      ready_timeout_ms: z.number().int().min(1).max(600_000).optional(),
    })
    .strict(),
]);

export const TemplateBuildSchema = z
  .object({
    name: Name.openapi({ example: "my-app" }),
    from: z
      .union([
        z.object({ template: z.string().min(1).max(64) }).strict(),
        z.object({ snapshot: Name }).strict(),
      ])
      .optional()
      .openapi({ description: 'Default {"template": "base"}' }),
    steps: z.array(StepSchema).max(200),
    files: z
      .record(Sha256, z.string().max(TEMPLATE_BUILD_BODY_LIMIT))
      .optional()
      .openapi({ description: "Contents of the copied files by sha256, base64" }),
    cpu_count: z.number().int().min(1).max(64).optional(),
    memory_mb: z.number().int().min(64).max(262_144).optional(),
    disk_size_mb: z.number().int().min(16).max(1_048_576).optional(),
  })
  .strict()
  .openapi("TemplateBuild");

export const TemplateSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    version: z.number().int(),
    base: z.string().openapi({
      description: "The template or snapshot the build started from (its FROM)",
      example: "base",
    }),
    size_bytes: z.number().int().nullable().openapi({
      description:
        "Disk its own layers take on a host, what it was built from not counted; null when not measured (built before sizes were recorded)",
    }),
    vcpus: z.number().int(),
    memory_mb: z.number().int(),
    disk_size_mb: z.number().int(),
    created_at: z.string(),
    start_cmd: z.string().nullable(),
  })
  .openapi("Template");

function recipeOf(body: z.infer<typeof TemplateBuildSchema>): Recipe {
  return {
    name: body.name,
    from: body.from ?? { template: "base" },
    steps: body.steps,
    files: Object.fromEntries(
      Object.entries(body.files ?? {}).map(([hash, b64]) => [hash, Buffer.from(b64, "base64")]),
    ),
    ...(body.cpu_count ? { vcpus: body.cpu_count } : {}),
    ...(body.memory_mb ? { memoryMb: body.memory_mb } : {}),
    ...(body.disk_size_mb ? { diskSizeMb: body.disk_size_mb } : {}),
  };
}

/** `/v1/templates`: build templates from a recipe (log streamed as NDJSON), list and delete them. */
export function registerTemplateRoutes(app: App, services: Services): void {
  const middleware = requireApiKey(services);

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/templates/builds",
      tags,
      summary: "Build a template from a recipe; the build log streams back as NDJSON",
      description:
        "One JSON object per line: `build` (its id, for DELETE /v1/templates/builds/{id}), then per step " +
        "`step` (`cached: true` when a layer of an earlier build serves), `log` lines of its output and " +
        "`step_done`; the last line is `done` with the template, or `error` with `code`, `message` and, " +
        "for a failing step, `step`, `exit_code` and `output`. A failed or cancelled build leaves no template.",
      security,
      middleware,
      request: {
        body: { content: { "application/json": { schema: TemplateBuildSchema } }, required: true },
      },
      responses: {
        200: {
          description: "The build log",
          content: { "application/x-ndjson": { schema: z.string() } },
        },
        ...errorResponses(
          "invalid_argument",
          "unauthenticated",
          "not_found",
          "already_exists",
          "payload_too_large",
        ),
      },
    }),
    async (c) => {
      const { teamId } = c.get("team");
      const recipe = recipeOf(c.req.valid("json"));
      await services.templates.validate(teamId, recipe);
      c.header("content-type", "application/x-ndjson");
      c.header("cache-control", "no-store");
      // A stream, not c.json: the route's types expect JSON for any content type naming "json".
      return stream(c, async (out) => {
        const abort = new AbortController();
        out.onAbort(() => abort.abort());
        const emit = ndjsonBuildLog((line) => out.write(line));
        await services.templates.build(teamId, recipe, emit, abort.signal);
      }) as never;
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/templates/builds/{id}",
      tags,
      summary: "Cancel a running build",
      security,
      middleware,
      request: { params: z.object({ id: z.string().max(64) }) },
      responses: {
        204: { description: "Cancelled; its stream ends with an `error` of code `cancelled`" },
        ...errorResponses("unauthenticated", "not_found"),
      },
    }),
    (c) => {
      services.templates.cancel(c.get("team").teamId, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/templates",
      tags,
      summary: "List the team's built templates (every version)",
      security,
      middleware,
      responses: {
        200: {
          description: "The templates",
          content: {
            "application/json": { schema: z.object({ templates: z.array(TemplateSchema) }) },
          },
        },
        ...errorResponses("unauthenticated"),
      },
    }),
    async (c) => c.json({ templates: await services.templates.views(c.get("team").teamId) }, 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/templates/{name}",
      tags,
      summary: "Delete a built template: every version by name, or one version by id",
      security,
      middleware,
      request: { params: z.object({ name: z.string().max(128) }) },
      responses: {
        204: { description: "Deleted" },
        ...errorResponses("unauthenticated", "not_found", "failed_precondition", "unavailable"),
      },
    }),
    async (c) => {
      const name = c.req.valid("param").name;
      if (!name) throw new ServerError("invalid_argument", "name is required");
      await services.templates.delete(c.get("team").teamId, name);
      return c.body(null, 204);
    },
  );
}
