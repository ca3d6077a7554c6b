import { AgentError } from "../errors.js";

// Letters, digits, `.`, `_`, `-`; 1..64 characters; no leading dot (so no `.`, `..` or hidden
// names). No `/` can appear, so a safe name is always one path segment.
const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

export function isSafeName(name: string): boolean {
  return SAFE_NAME.test(name);
}

/** Refuses template and snapshot names that could leave their directory (AgentError invalid_argument). */
export function assertSafeName(name: string, what = "name"): void {
  if (!isSafeName(name)) {
    throw new AgentError(
      "invalid_argument",
      `invalid ${what} ${JSON.stringify(name)}: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'`,
    );
  }
}
