import { createRoute } from "@hono/zod-openapi";
import type { RateLimiter, Services, TeamPrincipal } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireUser, requireUserOrApiKey } from "../middleware.js";
import { limitAuth } from "../rate-limit.js";
import {
  CredentialsSchema,
  InviteResponseSchema,
  LoginResponseSchema,
  PasswordChangeSchema,
  SignupResponseSchema,
  SignupSchema,
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
  summary: "Create a user and their default team (or join the team of an invitation)",
  request: {
    body: { content: { "application/json": { schema: SignupSchema } }, required: true },
  },
  responses: {
    201: {
      description: "Created",
      content: { "application/json": { schema: SignupResponseSchema } },
    },
    ...errorResponses(
      "invalid_argument",
      "permission_denied",
      "already_exists",
      "payload_too_large",
      "unsupported_media_type",
      "resource_exhausted",
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
      "resource_exhausted",
    ),
  },
});

export function registerAuthRoutes(
  app: App,
  services: Services,
  limits: { perIp: RateLimiter; perAccount: RateLimiter },
): void {
  // Before the routes: hashing is what a flood would starve the thread pool with.
  const limited = limitAuth(limits.perIp, limits.perAccount);
  app.use("/v1/auth/signup", limited);
  app.use("/v1/auth/login", limited);
  app.use("/v1/auth/password", limited);

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
    const { email, password, invite } = c.req.valid("json");
    const user = await services.accounts.register(email, password, invite);
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

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/auth/logout",
      tags: ["auth"],
      summary: "Revoke every login token of the user, this one included",
      security: [{ bearerAuth: [] }],
      middleware: requireUser(services),
      responses: { 204: { description: "Logged out" }, ...errorResponses("unauthenticated") },
    }),
    async (c) => {
      await services.accounts.logout(c.get("user"));
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/auth/password",
      tags: ["auth"],
      summary: "Change the password; every existing login token is revoked",
      security: [{ bearerAuth: [] }],
      middleware: requireUser(services),
      request: {
        body: { content: { "application/json": { schema: PasswordChangeSchema } }, required: true },
      },
      responses: {
        204: { description: "Changed" },
        ...errorResponses("invalid_argument", "unauthenticated", "resource_exhausted"),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      await services.accounts.changePassword(
        c.get("user"),
        body.current_password,
        body.new_password,
      );
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/teams/invites",
      tags: ["auth"],
      summary: "Invite someone into your team (owners only): a single-use token for sign-up",
      security: [{ bearerAuth: [] }],
      middleware: requireUser(services),
      responses: {
        201: {
          description: "Created",
          content: { "application/json": { schema: InviteResponseSchema } },
        },
        ...errorResponses("unauthenticated", "permission_denied"),
      },
    }),
    async (c) => {
      const invite = await services.accounts.invite(c.get("user"));
      return c.json({ id: invite.id, token: invite.token, expires_at: invite.expiresAt }, 201);
    },
  );
}
