import { createRoute } from "@hono/zod-openapi";
import type { Services, TeamPrincipal } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireUserOrApiKey } from "../middleware.js";
import {
  CredentialsSchema,
  LoginResponseSchema,
  SignupResponseSchema,
  WhoAmISchema,
} from "../schemas.js";

const credentialsBody = {
  content: { "application/json": { schema: CredentialsSchema } },
  required: true,
} as const;

const signup = createRoute({
  method: "post",
  path: "/v1/auth/signup",
  tags: ["auth"],
  summary: "Create a user and their default team",
  request: { body: credentialsBody },
  responses: {
    201: {
      description: "Created",
      content: { "application/json": { schema: SignupResponseSchema } },
    },
    ...errorResponses(
      "invalid_argument",
      "already_exists",
      "payload_too_large",
      "unsupported_media_type",
    ),
  },
});

const login = createRoute({
  method: "post",
  path: "/v1/auth/login",
  tags: ["auth"],
  summary: "Exchange email and password for a bearer token",
  request: { body: credentialsBody },
  responses: {
    200: {
      description: "Logged in",
      content: { "application/json": { schema: LoginResponseSchema } },
    },
    ...errorResponses(
      "invalid_argument",
      "unauthenticated",
      "payload_too_large",
      "unsupported_media_type",
    ),
  },
});

export function registerAuthRoutes(app: App, services: Services): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/auth/whoami",
      tags: ["auth"],
      summary: "The team, and the user or API key, that the credentials speak for",
      security: [{ apiKeyAuth: [] }, { bearerAuth: [] }],
      middleware: requireUserOrApiKey(services),
      responses: {
        200: {
          description: "Who the credentials speak for",
          content: { "application/json": { schema: WhoAmISchema } },
        },
        ...errorResponses("unauthenticated"),
      },
    }),
    async (c) => {
      // Exactly one of the two is set, by whichever credential the request carried.
      const key: TeamPrincipal | undefined = c.get("team");
      const who = await services.accounts.whoami(key ?? c.get("user"));
      return c.json(
        {
          team_id: who.teamId,
          team_name: who.teamName,
          ...(who.user ? { user_id: who.user.id, email: who.user.email } : {}),
          ...(who.apiKey ? { api_key_id: who.apiKey.id, api_key_name: who.apiKey.name } : {}),
        },
        200,
      );
    },
  );

  app.openapi(signup, async (c) => {
    const { email, password } = c.req.valid("json");
    const user = await services.accounts.signup(email, password);
    return c.json(
      { id: user.id, email: user.email, team_id: user.teamId, created_at: user.createdAt },
      201,
    );
  });

  app.openapi(login, async (c) => {
    const { email, password } = c.req.valid("json");
    const result = await services.accounts.login(email, password);
    return c.json(
      {
        token: result.token,
        expires_at: result.expiresAt,
        user_id: result.userId,
        team_id: result.teamId,
      },
      200,
    );
  });
}
