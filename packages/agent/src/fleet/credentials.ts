import { randomBytes } from "node:crypto";
import { open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { AgentError } from "../errors.js";

/** `<agentDir>/credentials.json` (mode 0600): what registration gave this host. */
export interface HostCredentials {
  server_url: string;
  host_id: string;
  /** 64 hex chars: the bearer the server presents on every call to this agent. */
  agent_key: string;
  host_jwt: string;
  host_jwt_expires_at: string;
  refresh_token: string;
  refresh_token_expires_at: string;
}

export const CREDENTIALS_FILE = "credentials.json";

const FIELDS = [
  "server_url",
  "host_id",
  "agent_key",
  "host_jwt",
  "host_jwt_expires_at",
  "refresh_token",
  "refresh_token_expires_at",
] as const;

/** A fresh agent key: 32 random bytes, hex. */
export function newAgentKey(): string {
  return randomBytes(32).toString("hex");
}

/** The stored credentials, undefined when there are none; a damaged file is an error. */
export async function readCredentials(agentDir: string): Promise<HostCredentials | undefined> {
  const file = join(agentDir, CREDENTIALS_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw AgentError.from(err);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new AgentError(
      "failed_precondition",
      `${file} is not JSON; remove it to register again`,
      {
        cause: err,
      },
    );
  }
  for (const field of FIELDS) {
    if (typeof raw[field] !== "string" || !raw[field]) {
      throw new AgentError(
        "failed_precondition",
        `${file} lacks ${field}; remove it to register again`,
      );
    }
  }
  return Object.fromEntries(FIELDS.map((f) => [f, raw[f]])) as unknown as HostCredentials;
}

/**
 * Atomic and durable: written 0600 to a temp file, fsynced, renamed over the old one. A crash
 * leaves the old credentials or the new ones, never half of either.
 */
export async function writeCredentials(agentDir: string, creds: HostCredentials): Promise<void> {
  const file = join(agentDir, CREDENTIALS_FILE);
  const tmp = join(agentDir, `.${CREDENTIALS_FILE}.${randomBytes(4).toString("hex")}`);
  const body = `${JSON.stringify(Object.fromEntries(FIELDS.map((f) => [f, creds[f]])), null, 2)}\n`;
  try {
    const handle = await open(tmp, "wx", 0o600);
    try {
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw AgentError.from(err);
  }
}
