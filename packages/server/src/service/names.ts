/** The agent's SafeName, used for template and snapshot names: letters, digits, `._-`, ≤ 64. */
export const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

export function isSafeName(name: string): boolean {
  return SAFE_NAME.test(name);
}
