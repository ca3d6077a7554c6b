import { defaults } from "../defaults.js";
import { EnvdError } from "../errors.js";
import { userFromName } from "../user/index.js";
import { type Request, type Response, readJsonBody } from "./respond.js";

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string")
  );
}

/** POST /init: defaults for later processes (called after create and after resume). */
export async function handleInit(req: Request, res: Response): Promise<void> {
  const body = await readJsonBody(req);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new EnvdError("invalid_argument", "body must be a JSON object");
  }
  const { envVars, defaultUser, defaultWorkdir } = body as Record<string, unknown>;
  if (envVars !== undefined && !isStringRecord(envVars)) {
    throw new EnvdError("invalid_argument", "envVars must map strings to strings");
  }
  if (defaultUser !== undefined && typeof defaultUser !== "string") {
    throw new EnvdError("invalid_argument", "defaultUser must be a string");
  }
  if (defaultWorkdir !== undefined && typeof defaultWorkdir !== "string") {
    throw new EnvdError("invalid_argument", "defaultWorkdir must be a string");
  }
  // Validate before changing anything, so a bad user leaves the old defaults in place.
  if (defaultUser) await userFromName(defaultUser);
  if (envVars) defaults.envVars = { ...defaults.envVars, ...envVars };
  if (defaultUser) defaults.user = defaultUser;
  if (defaultWorkdir) defaults.workdir = defaultWorkdir;
  res.writeHead(204);
  res.end();
}
