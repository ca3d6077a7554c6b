import { createRoute } from "@hono/zod-openapi";
import type { ApiKeyView, Services } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireUser } from "../middleware.js";
import { ApiKeyCreatedSchema, ApiKeyCreateSchema, ApiKeyListSchema, IdParams } from "../schemas.js";

const security = [{ bearerAuth: [] }];

function format(key: ApiKeyView) {
  return {
    id: key.id,
    name: key.name,
    prefix: key.prefix,
    created_at: key.createdAt,
    last_used_at: key.lastUsedAt,
  };
}

export function registerApiKeyRoutes(app: App, services: Services): void {
  const middleware = requireUser(services);

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/api-keys",
      tags: ["api-keys"],
      summary: "Create an API key for the team (the key is shown only once)",
      security,
      middleware,
      request: {
        body: { content: { "application/json": { schema: ApiKeyCreateSchema } }, required: true },
      },
      responses: {
        201: {
          description: "Created",
          content: { "application/json": { schema: ApiKeyCreatedSchema } },
        },
        ...errorResponses(
          "invalid_argument",
          "unauthenticated",
          "payload_too_large",
          "unsupported_media_type",
        ),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const created = await services.apiKeys.create(
        c.get("user"),
        body.name ?? body.format ?? "default",
        body.format,
      );
      return c.json({ ...format(created), key: created.key }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/api-keys",
      tags: ["api-keys"],
      summary: "List the team's API keys",
      security,
      middleware,
      responses: {
        200: {
          description: "The keys",
          content: { "application/json": { schema: ApiKeyListSchema } },
        },
        ...errorResponses("unauthenticated"),
      },
    }),
    async (c) => {
      const keys = await services.apiKeys.list(c.get("user").teamId);
      return c.json({ api_keys: keys.map(format) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/api-keys/{id}",
      tags: ["api-keys"],
      summary: "Delete an API key; requests using it fail from then on",
      security,
      middleware,
      request: { params: IdParams },
      responses: {
        204: { description: "Deleted" },
        ...errorResponses("invalid_argument", "unauthenticated", "not_found"),
      },
    }),
    async (c) => {
      await services.apiKeys.delete(c.get("user").teamId, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );
}
