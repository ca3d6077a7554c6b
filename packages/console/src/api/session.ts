import createClient from "openapi-fetch";
import type { paths } from "./openapi.gen.js";

/**
 * A signed-in browser: the user's bearer token (for account routes such as API keys) and an API
 * key the console made for itself at sign-in (sandbox routes, the SDK and WebSockets take keys).
 * Both come from the public API; sign-out deletes the key and revokes the token.
 */
export interface Session {
  email: string;
  token: string;
  expiresAt: string;
  apiKey: string;
  apiKeyId: string;
}

const STORAGE_KEY = "wrenn.session";

/** The API is the console's own origin: the server serves both. */
export const apiUrl = (): string => window.location.origin;

/**
 * A typed client of the REST API (types generated from the server's OpenAPI document). It sends
 * both credentials; `as: "user"` only the bearer token (routes open to both then answer for the
 * user, not the console's key).
 */
export function restClient(session?: Session, as: "key" | "user" = "key") {
  const headers: Record<string, string> = {};
  if (session) {
    headers.authorization = `Bearer ${session.token}`;
    if (as === "key") headers["x-api-key"] = session.apiKey;
  }
  return createClient<paths>({ baseUrl: apiUrl(), headers });
}

/** What the SDK needs to act for this session. */
export const sdkOptions = (session: Session) => ({ apiKey: session.apiKey, apiUrl: apiUrl() });

/** `{code, message}` from the API (or a network failure) as an Error with that message. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Unwraps an openapi-fetch answer: its data, or an {@link ApiError}. */
export async function must<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  if (error !== undefined || !response.ok) {
    const body = (error ?? {}) as { code?: string; message?: string };
    throw new ApiError(body.code ?? String(response.status), body.message ?? response.statusText);
  }
  return data as T;
}

export function loadSession(): Session | undefined {
  try {
    const value = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null") as Session | null;
    if (value && Date.parse(value.expiresAt) > Date.now()) return value;
  } catch {
    // unreadable: sign in again
  }
  return undefined;
}

export async function signIn(email: string, password: string): Promise<Session> {
  const login = await must(restClient().POST("/v1/auth/login", { body: { email, password } }));
  const authed = createClient<paths>({
    baseUrl: apiUrl(),
    headers: { authorization: `Bearer ${login.token}` },
  });
  const key = await must(
    authed.POST("/v1/api-keys", {
      body: { name: `console ${new Date().toISOString().slice(0, 16).replace("T", " ")}` },
    }),
  );
  const session: Session = {
    email,
    token: login.token,
    expiresAt: login.expires_at,
    apiKey: key.key,
    apiKeyId: key.id,
  };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  return session;
}

/**
 * A fresh login token for a session whose tokens the server has refused (after a password
 * change); the console's API key is kept.
 */
export async function renewSession(session: Session, password: string): Promise<Session> {
  const login = await must(
    restClient().POST("/v1/auth/login", { body: { email: session.email, password } }),
  );
  const renewed: Session = { ...session, token: login.token, expiresAt: login.expires_at };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(renewed));
  return renewed;
}

/**
 * Deletes the console's key, then revokes the login token. The API revokes every login token of
 * the user at once, so other console tabs must sign in again too; the CLI holds an API key, not a
 * token, and stays signed in.
 */
export async function signOut(session: Session): Promise<void> {
  sessionStorage.removeItem(STORAGE_KEY);
  const client = restClient(session, "user");
  // Best effort: an expired token can do neither; its key then stays listed until removed.
  await client
    .DELETE("/v1/api-keys/{id}", { params: { path: { id: session.apiKeyId } } })
    .catch(() => {});
  await client.POST("/v1/auth/logout").catch(() => {});
}

/** Any thrown value as a sentence for the page. */
export const messageOf = (err: unknown): string =>
  err instanceof Error ? err.message : String(err);
