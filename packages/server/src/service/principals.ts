import type { TeamRole } from "../db/index.js";

/** A user acting through a login token, in the team the token names. */
export interface UserPrincipal {
  kind: "user";
  userId: string;
  teamId: string;
  role: TeamRole;
}

/** A program acting for a team through one of its API keys. */
export interface TeamPrincipal {
  kind: "api_key";
  teamId: string;
  apiKeyId: string;
}
