import { createRoute, z } from "@hono/zod-openapi";
import type { Services } from "../../service/index.js";
import type { App } from "../env.js";
import { errorResponses } from "../error-handling.js";
import { requireUser, requireUserOrApiKey } from "../middleware.js";
import { IdParams, PendingInviteListSchema, TeamMemberListSchema } from "../schemas.js";

const tags = ["teams"];

const MemberParams = z.object({
  user_id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "user_id", in: "path" }, example: "k3x9q2m7v1b8n4c6z0ta" }),
});

/**
 * The team's members: listed to any member (or the team's API keys), removed by an owner. Its
 * pending invitations (made with `POST /v1/teams/invites`): listed to members, revoked by an owner.
 */
export function registerTeamRoutes(app: App, services: Services): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/teams/members",
      tags,
      summary: "List the members of your team",
      security: [{ bearerAuth: [] }, { apiKeyAuth: [] }],
      middleware: requireUserOrApiKey(services),
      responses: {
        200: {
          description: "The members, oldest first",
          content: { "application/json": { schema: TeamMemberListSchema } },
        },
        ...errorResponses("unauthenticated"),
      },
    }),
    async (c) => {
      const principal = c.get("user") ?? c.get("team");
      const members = await services.accounts.members(principal);
      return c.json(
        {
          members: members.map((m) => ({
            user_id: m.userId,
            email: m.email,
            role: m.role,
            joined_at: m.joinedAt,
          })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/teams/members/{user_id}",
      tags,
      summary: "Remove a member from your team (owners only; the last owner stays)",
      security: [{ bearerAuth: [] }],
      middleware: requireUser(services),
      request: { params: MemberParams },
      responses: {
        204: { description: "Removed: their login tokens for this team stop working" },
        ...errorResponses(
          "unauthenticated",
          "permission_denied",
          "not_found",
          "failed_precondition",
        ),
      },
    }),
    async (c) => {
      await services.accounts.removeMember(c.get("user"), c.req.valid("param").user_id);
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/teams/invites",
      tags,
      summary: "List your team's pending invitations (unused, unexpired; never their tokens)",
      security: [{ bearerAuth: [] }],
      middleware: requireUser(services),
      responses: {
        200: {
          description: "The pending invitations, oldest first",
          content: { "application/json": { schema: PendingInviteListSchema } },
        },
        ...errorResponses("unauthenticated"),
      },
    }),
    async (c) => {
      const invites = await services.accounts.pendingInvites(c.get("user"));
      return c.json(
        {
          invites: invites.map((i) => ({
            id: i.id,
            created_at: i.createdAt,
            expires_at: i.expiresAt,
            created_by: i.createdBy,
          })),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/teams/invites/{id}",
      tags,
      summary: "Revoke a pending invitation (owners only): its token no longer signs anyone up",
      security: [{ bearerAuth: [] }],
      middleware: requireUser(services),
      request: { params: IdParams },
      responses: {
        204: { description: "Revoked" },
        ...errorResponses("unauthenticated", "permission_denied", "not_found"),
      },
    }),
    async (c) => {
      await services.accounts.revokeInvite(c.get("user"), c.req.valid("param").id);
      return c.body(null, 204);
    },
  );
}
