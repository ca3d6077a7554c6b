import { defaults } from "../defaults.js";
import { EnvdError } from "../errors.js";
import { userFromName } from "../user/index.js";
import type { HttpContext } from "./index.js";
import { type Request, type Response, readJsonBody } from "./respond.js";

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string")
  );
}

/** Long enough for any random token, short enough that nobody stores a document in it. */
const MAX_TOKEN_LENGTH = 512;

/**
 * POST /init: defaults for later processes (called after create and after resume), and
 * optionally a new access token: a microVM restored from a shared snapshot boots with the
 * snapshot's token and gets its own here. The request passed the current token already.
 */
export async function handleInit(req: Request, res: Response, ctx: HttpContext): Promise<void> {
  const body = await readJsonBody(req);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new EnvdError("invalid_argument", "body must be a JSON object");
  }
  const { envVars, defaultUser, defaultWorkdir, accessToken } = body as Record<string, unknown>;
  if (envVars !== undefined && !isStringRecord(envVars)) {
    throw new EnvdError("invalid_argument", "envVars must map strings to strings");
  }
  if (defaultUser !== undefined && typeof defaultUser !== "string") {
    throw new EnvdError("invalid_argument", "defaultUser must be a string");
  }
  if (defaultWorkdir !== undefined && typeof defaultWorkdir !== "string") {
    throw new EnvdError("invalid_argument", "defaultWorkdir must be a string");
  }
  if (
    accessToken !== undefined &&
    (typeof accessToken !== "string" ||
      accessToken.length === 0 ||
      accessToken.length > MAX_TOKEN_LENGTH)
  ) {
    throw new EnvdError(
      "invalid_argument",
      `accessToken must be a non-empty string of at most ${MAX_TOKEN_LENGTH} characters`,
    );
  }
  // Validate before changing anything, so a bad user leaves the old defaults in place.
  if (defaultUser) await userFromName(defaultUser);
  if (envVars) defaults.envVars = { ...defaults.envVars, ...envVars };
  if (defaultUser) defaults.user = defaultUser;
  if (defaultWorkdir) defaults.workdir = defaultWorkdir;
  if (accessToken) ctx.setAccessToken(accessToken);
  res.writeHead(204);
  res.end();
}
