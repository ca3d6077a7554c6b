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

/**
 * Signs in with email and password and makes an `e2b_<hex>` API key for the user's team
 * (`POST /v1/api-keys {"format":"e2b"}`): the kind E2B's SDK accepts, and Wrenn everywhere.
 */
export async function createE2bKey(
  apiUrl: string,
  email: string,
  password: string,
): Promise<{ key: string; email: string }> {
  // No API key yet: these two calls authenticate by password, then by the login token.
  const client = new ApiClient({ apiUrl, apiKey: "", defaultTimeoutMs: 30_000 });
  const login = await client.json<{ token: string }>({
    method: "POST",
    path: "/v1/auth/login",
    json: { email, password },
  });
  const made = await client.json<{ key: string }>({
    method: "POST",
    path: "/v1/api-keys",
    json: { format: "e2b", name: "e2b" },
    headers: { authorization: `Bearer ${login.token}` },
  });
  return { key: made.key, email };
}

/** The lines to paste into a shell so code written for E2B's SDK reaches this server. */
export function e2bExports(apiUrl: string, key: string): string {
  return [
    `export E2B_API_URL=${apiUrl}`,
    `export E2B_SANDBOX_URL=${apiUrl}`,
    `export E2B_API_KEY=${key}`,
  ].join("\n");
}
