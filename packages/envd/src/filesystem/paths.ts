import { isAbsolute, join, resolve } from "node:path";
import { EnvdError } from "../errors.js";
import type { UserInfo } from "../user/index.js";

/**
 * The absolute, normalised path a request names: absolute as given, `~` and `~/x` in the user's
 * home, anything else relative to the home (as E2B's envd does).
 */
export function resolvePath(input: string | null | undefined, user: UserInfo): string {
  if (!input) throw new EnvdError("invalid_argument", "path is required");
  if (input.includes("\0")) throw new EnvdError("invalid_argument", "path contains a NUL byte");
  let path = input;
  if (path === "~" || path.startsWith("~/")) path = join(user.home, path.slice(1));
  else if (path.startsWith("~"))
    throw new EnvdError("invalid_argument", `cannot expand another user's home in "${input}"`);
  return isAbsolute(path) ? resolve(path) : resolve(user.home, path);
}
