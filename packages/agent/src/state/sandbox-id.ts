import { AgentError } from "../errors.js";

// DNS-label safe: ids appear in `{port}-{id}.{domain}` hosts, netns names and paths.
const SANDBOX_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function isSandboxId(id: string): boolean {
  return SANDBOX_ID.test(id);
}

export function assertSandboxId(id: string): void {
  if (!isSandboxId(id)) {
    throw new AgentError(
      "invalid_argument",
      `invalid sandbox id ${JSON.stringify(id)}: use 1-63 lowercase letters, digits or '-', not at either end`,
    );
  }
}
