import { createRoute, z } from "@hono/zod-openapi";
import { ServerError } from "../../errors.js";
import type { Services } from "../../service/index.js";
import type { E2bAccessTokens } from "../e2b/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireApiKey } from "../middleware.js";
import { IdParams } from "../schemas.js";

const PortParams = IdParams.extend({
  port: z.coerce
    .number()
    .int()
    .min(1)
    .max(65_535)
    .openapi({ param: { name: "port", in: "path" }, example: 8000 }),
});

const PublishedPortSchema = z
  .object({
    port: z.number().int(),
    host: z.string().openapi({ example: "8000-k3x9q2m7v1b8n4c6z0ta.sandboxes.example.com" }),
    url: z.string().openapi({ example: "https://8000-k3x9q2m7v1b8n4c6z0ta.sandboxes.example.com" }),
    traffic_access_token: z.string().nullable().openapi({
      description:
        "When the sandbox takes no public traffic: send it as the e2b-traffic-access-token header; else null",
    }),
  })
  .openapi("PublishedPort");

/**
 * Where a port of a sandbox is reachable from outside: `<port>-<id>.<WRENN_DOMAIN>`, served by
 * this server (which must receive that name, e.g. a wildcard DNS record and a proxy in front).
 */
export function registerPortRoutes(
  app: App,
  services: Services,
  domain: string | null,
  tokens: E2bAccessTokens,
): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandboxes/{id}/ports/{port}",
      tags: ["sandboxes"],
      summary: "The public host name and URL of a port of the sandbox",
      security: [{ apiKeyAuth: [] }],
      middleware: requireApiKey(services),
      request: { params: PortParams },
      responses: {
        200: {
          description: "Where the port is reachable",
          content: { "application/json": { schema: PublishedPortSchema } },
        },
        ...errorResponses("unauthenticated", "not_found", "failed_precondition"),
      },
    }),
    async (c) => {
      const { id, port } = c.req.valid("param");
      const sandbox = await services.sandboxes.get(c.get("team").teamId, id);
      if (!domain) {
        throw new ServerError(
          "failed_precondition",
          "this server publishes no ports: start it with WRENN_DOMAIN=<domain> (a wildcard DNS name pointing at it)",
        );
      }
      const host = `${port}-${sandbox.id}.${domain}`;
      // Same scheme and port as this request reached the server on.
      const reached = new URL(c.req.url);
      const serverPort = /:(\d+)$/.exec(c.req.header("host") ?? "")?.[1];
      const url = `${reached.protocol}//${host}${serverPort ? `:${serverPort}` : ""}`;
      const traffic = sandbox.publicTraffic ? null : tokens.trafficTokenFor(sandbox.id);
      return c.json({ port, host, url, traffic_access_token: traffic }, 200);
    },
  );
}
