import { createRoute } from "@hono/zod-openapi";
import type { HostRecord } from "../../db/index.js";
import type { Services } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireUserOrApiKey } from "../middleware.js";
import { HostListSchema } from "../schemas.js";

function format(h: HostRecord) {
  return {
    id: h.id,
    address: h.address,
    state: h.state,
    runtimes: h.runtimes,
    capacity: h.capacity,
    created_at: h.createdAt,
    last_seen_at: h.lastSeenAt,
  };
}

export function registerHostRoutes(app: App, services: Services): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/hosts",
      tags: ["hosts"],
      summary: "The hosts sandboxes run on (single-host mode: the embedded agent)",
      security: [{ apiKeyAuth: [] }, { bearerAuth: [] }],
      middleware: requireUserOrApiKey(services),
      responses: {
        200: {
          description: "The hosts",
          content: { "application/json": { schema: HostListSchema } },
        },
        ...errorResponses("unauthenticated"),
      },
    }),
    async (c) => c.json({ hosts: (await services.hosts.list()).map(format) }, 200),
  );
}
