import { createRoute, z } from "@hono/zod-openapi";
import type { Services } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireApiKey } from "../middleware.js";
import { IdParams } from "../schemas.js";

const MetricsSchema = z
  .object({
    cpu_used_pct: z
      .number()
      .openapi({ description: "Of the sandbox's CPU quota, since the last sample" }),
    cpu_count: z.number().int(),
    mem_used_mb: z.number(),
    mem_total_mb: z.number(),
    disk_used_mb: z.number().openapi({ description: "Allocated blocks, not apparent size" }),
    disk_total_mb: z.number(),
    timestamp: z.string().openapi({ format: "date-time" }),
  })
  .openapi("SandboxMetrics");

export function registerMetricsRoutes(app: App, services: Services): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/metrics",
      tags: ["sandboxes"],
      summary: "CPU, memory and disk use of a running sandbox (MiB)",
      security: [{ apiKeyAuth: [] }],
      middleware: requireApiKey(services),
      request: { params: IdParams },
      responses: {
        200: {
          description: "A fresh sample",
          content: { "application/json": { schema: MetricsSchema } },
        },
        ...errorResponses("unauthenticated", "not_found", "failed_precondition", "unavailable"),
      },
    }),
    async (c) => {
      const m = await services.metrics.get(c.get("team").teamId, c.req.valid("param").id);
      return c.json(
        {
          cpu_used_pct: m.cpuUsedPct,
          cpu_count: m.cpuCount,
          mem_used_mb: m.memUsedMb,
          mem_total_mb: m.memTotalMb,
          disk_used_mb: m.diskUsedMb,
          disk_total_mb: m.diskTotalMb,
          timestamp: m.timestamp,
        },
        200,
      );
    },
  );
}
