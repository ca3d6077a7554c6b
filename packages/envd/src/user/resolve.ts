import { defaults } from "../defaults.js";
import { EnvdError } from "../errors.js";
import { lookupUser, type UserInfo } from "./passwd.js";

/** The user named in `name`, or the default user set by /init (or WRENN_ENVD_USER). */
export function userFromName(name: string | null | undefined): Promise<UserInfo> {
  return lookupUser(name || defaults.user);
}

/**
 * The user a Connect call acts as. E2B's clients send `Authorization: Basic base64("<user>:")`;
 * without it the default user applies.
 */
export function userFromHeaders(headers: Headers): Promise<UserInfo> {
  const auth = headers.get("authorization");
  if (!auth) return userFromName(undefined);
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(auth);
  if (!match?.[1]) throw new EnvdError("unauthenticated", "Authorization must be Basic <user>:");
  const decoded = Buffer.from(match[1], "base64").toString("utf8");
  const name = decoded.split(":")[0];
  return userFromName(name);
}
