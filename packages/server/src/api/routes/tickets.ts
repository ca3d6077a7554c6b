import { createRoute, z } from "@hono/zod-openapi";
import type { Services } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireApiKey } from "../middleware.js";
import { IdParams } from "../schemas.js";

const TicketSchema = z
  .object({ ticket: z.string(), expires_at: z.string() })
  .openapi("StreamTicket");

export function registerTicketRoutes(app: App, services: Services): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandboxes/{id}/ticket",
      tags: ["sandboxes"],
      summary:
        "A single-use ticket (30 s) to open one of the sandbox's streams from a browser: `?ticket=`",
      security: [{ apiKeyAuth: [] }],
      middleware: requireApiKey(services),
      request: { params: IdParams },
      responses: {
        201: { description: "Issued", content: { "application/json": { schema: TicketSchema } } },
        ...errorResponses("unauthenticated", "not_found"),
      },
    }),
    async (c) => {
      const issued = await services.tickets.issue(c.get("team").teamId, c.req.valid("param").id);
      return c.json({ ticket: issued.ticket, expires_at: issued.expiresAt }, 201);
    },
  );
}
