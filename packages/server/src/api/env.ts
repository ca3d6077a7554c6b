import type { OpenAPIHono } from "@hono/zod-openapi";
import type { TeamPrincipal, UserPrincipal } from "../service/index.js";

/** What middleware puts on the request context for handlers. */
export interface AppEnv {
  Variables: {
    requestId: string;
    /** Set by `requireUser` on user-management routes. */
    user: UserPrincipal;
    /** Set by `requireApiKey` on sandbox routes. */
    team: TeamPrincipal;
  };
}

export type App = OpenAPIHono<AppEnv>;
