import { ApiClient } from "@wrenn/sdk";
import type { Connection } from "./connection.js";

/** `GET /v1/auth/whoami`: the team, and the user or API key, the credentials speak for. */
export interface Identity {
  team_id: string;
  team_name?: string;
  user_id?: string;
  email?: string;
  api_key_id?: string;
  api_key_name?: string;
}

/** Checks the key against the server: the one call `wrenn login` and `wrenn whoami` make. */
export async function whoami(connection: Connection): Promise<Identity> {
  const client = new ApiClient({ ...connection, defaultTimeoutMs: 10_000 });
  return client.json<Identity>({ method: "GET", path: "/v1/auth/whoami" });
}

/** `admin@wrenn.local (team acme)` or `API key "ci" (team acme)`. */
export function describeIdentity(who: Identity): string {
  const subject = who.email ?? (who.api_key_name ? `API key "${who.api_key_name}"` : "this key");
  return `${subject} (team ${who.team_name ?? who.team_id})`;
}
