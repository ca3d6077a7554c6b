import { createRoute, z } from "@hono/zod-openapi";
import type { Services } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireUser, requireUserOrApiKey } from "../middleware.js";

const Limit = z.number().int().min(0).max(1_000_000_000);

const QuotasSchema = z
  .object({
    running_sandboxes: Limit,
    vcpus: Limit,
    memory_mb: Limit,
    disk_mb: Limit,
    exec_streams: Limit,
    file_watches: Limit,
  })
  .openapi("Quotas");

export function registerQuotaRoutes(app: App, services: Services): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/quotas",
      tags: ["quotas"],
      summary: "The limits of the caller's team",
      security: [{ apiKeyAuth: [] }, { bearerAuth: [] }],
      middleware: requireUserOrApiKey(services),
      responses: {
        200: { description: "Limits", content: { "application/json": { schema: QuotasSchema } } },
        ...errorResponses("unauthenticated"),
      },
    }),
    async (c) => {
      const principal = c.get("team") ?? c.get("user");
      return c.json(await services.quotas.limits(principal.teamId), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/v1/teams/{team_id}/quotas",
      tags: ["quotas"],
      summary: "Override some of a team's limits (the operator's team only)",
      security: [{ bearerAuth: [] }],
      middleware: requireUser(services),
      request: {
        params: z.object({ team_id: z.string().min(1).max(64) }),
        body: {
          content: { "application/json": { schema: QuotasSchema.partial().strict() } },
          required: true,
        },
      },
      responses: {
        200: { description: "Limits", content: { "application/json": { schema: QuotasSchema } } },
        ...errorResponses("invalid_argument", "unauthenticated", "permission_denied", "not_found"),
      },
    }),
    async (c) => {
      const limits = await services.quotas.override(
        c.get("user"),
        c.req.valid("param").team_id,
        c.req.valid("json"),
      );
      return c.json(limits, 200);
    },
  );
}
