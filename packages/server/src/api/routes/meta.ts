import { swaggerUI } from "@hono/swagger-ui";
import { createRoute } from "@hono/zod-openapi";
import { stringify } from "yaml";
import type { App } from "../env.js";
import { HealthSchema } from "../schemas.js";

/** What `/health` reports: ready, or the things still being prepared (e.g. the default template). */
export type Readiness = () => { ready: boolean; preparing?: string[] };

const documentConfig = {
  openapi: "3.1.0",
  info: {
    title: "Wrenn API",
    version: "0.0.0",
    description:
      "Control plane of Wrenn: users, teams, API keys and sandboxes. Errors are `{code, message}`.",
  },
};

/** The OpenAPI 3.1 document, generated from the route schemas. */
export function openApiDocument(app: App) {
  return app.getOpenAPI31Document(documentConfig);
}

export function registerMetaRoutes(app: App, readiness: Readiness): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "The token from POST /v1/auth/login",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "apiKeyAuth", {
    type: "apiKey",
    in: "header",
    name: "X-API-Key",
    description: "A team API key from POST /v1/api-keys",
  });

  app.openapi(
    createRoute({
      method: "get",
      path: "/health",
      tags: ["meta"],
      summary: "Ready to create sandboxes (200), or still preparing (503)",
      responses: {
        200: { description: "Ready", content: { "application/json": { schema: HealthSchema } } },
        503: {
          description: "Preparing",
          content: { "application/json": { schema: HealthSchema } },
        },
      },
    }),
    (c) => {
      const { ready, preparing } = readiness();
      return ready
        ? c.json({ status: "ok" as const }, 200)
        : c.json({ status: "preparing" as const, preparing: preparing ?? [] }, 503);
    },
  );

  // Built on first request, after every route is registered, then reused.
  let json: string | undefined;
  let yaml: string | undefined;
  app.get("/openapi.json", (c) => {
    json ??= JSON.stringify(openApiDocument(app));
    return c.body(json, 200, { "content-type": "application/json" });
  });
  app.get("/openapi.yaml", (c) => {
    yaml ??= stringify(openApiDocument(app), { aliasDuplicateObjects: false });
    return c.body(yaml, 200, { "content-type": "application/yaml" });
  });
  app.get("/docs", swaggerUI({ url: "/openapi.json", title: "Wrenn API" }));
}
