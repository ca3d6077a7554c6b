import { createRoute } from "@hono/zod-openapi";
import type { TemplateRow } from "../../db/index.js";
import type { Services } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireApiKey } from "../middleware.js";
import {
  SnapshotCreateSchema,
  SnapshotListSchema,
  SnapshotParams,
  SnapshotSchema,
} from "../schemas.js";

const security = [{ apiKeyAuth: [] }];
const tags = ["snapshots"];

function format(s: TemplateRow) {
  return {
    id: s.id,
    name: s.name,
    base_template: s.baseTemplate,
    source_sandbox_id: s.sourceSandboxId,
    vcpus: s.vcpus,
    memory_mb: s.memoryMb,
    disk_size_mb: s.diskSizeMb,
    created_at: s.createdAt,
  };
}

export function registerSnapshotRoutes(app: App, services: Services): void {
  const middleware = requireApiKey(services);

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/snapshots",
      tags,
      summary: "Snapshot a sandbox's filesystem into a named template of the team",
      security,
      middleware,
      request: {
        body: { content: { "application/json": { schema: SnapshotCreateSchema } }, required: true },
      },
      responses: {
        201: {
          description: "Created",
          content: { "application/json": { schema: SnapshotSchema } },
        },
        ...errorResponses(
          "invalid_argument",
          "unauthenticated",
          "not_found",
          "already_exists",
          "unavailable",
        ),
      },
    }),
    async (c) => {
      const { sandbox_id, name } = c.req.valid("json");
      return c.json(
        format(await services.snapshots.create(c.get("team").teamId, sandbox_id, name)),
        201,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/snapshots",
      tags,
      summary: "List the team's snapshots",
      security,
      middleware,
      responses: {
        200: {
          description: "The snapshots",
          content: { "application/json": { schema: SnapshotListSchema } },
        },
        ...errorResponses("unauthenticated"),
      },
    }),
    async (c) =>
      c.json({ snapshots: (await services.snapshots.list(c.get("team").teamId)).map(format) }, 200),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/snapshots/{id}",
      tags,
      summary: "Delete a snapshot (by id or name) that no sandbox uses",
      security,
      middleware,
      request: { params: SnapshotParams },
      responses: {
        204: { description: "Deleted" },
        ...errorResponses("unauthenticated", "not_found", "failed_precondition", "unavailable"),
      },
    }),
    async (c) => {
      await services.snapshots.delete(c.get("team").teamId, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );
}
