import { randomBytes } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Services } from "../service/index.js";

/** What the CLI and SDK read to find this server: `${WRENN_DATA_DIR}/config.json` (0600). */
export interface ClientConfig {
  api_url: string;
  api_key: string;
}

export interface BootstrapResult {
  configPath: string;
  /** Undefined on a replica whose database was set up by another server. */
  config?: ClientConfig;
  /** Set on the first run only: the admin account made for it (the password is shown once). */
  admin?: { email: string; password: string; teamId: string };
}

export const ADMIN_EMAIL = "admin@wrenn.local";

export async function readClientConfig(path: string): Promise<ClientConfig | undefined> {
  try {
    const value = JSON.parse(await readFile(path, "utf8")) as Partial<ClientConfig>;
    if (typeof value.api_url === "string" && typeof value.api_key === "string")
      return { api_url: value.api_url, api_key: value.api_key };
  } catch {
    // Missing or unreadable: the first run writes it.
  }
  return undefined;
}

async function writeClientConfig(path: string, config: ClientConfig): Promise<void> {
  // Written whole then renamed, so a reader never sees half a key.
  const temp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, path);
}

/**
 * First run on an empty database: an admin user, its team (the operator's) and an API key,
 * written to `config.json` for the CLI and SDK. Later runs reuse the file (only `api_url`
 * follows the address the server listens on); a replica on a database that already has its
 * admin makes none (`config` undefined when this data dir has no file of its own).
 */
export async function bootstrapSingleHost(
  services: Services,
  dataDir: string,
  apiUrl: string,
): Promise<BootstrapResult> {
  const configPath = join(dataDir, "config.json");
  const operatorTeam = await services.accounts.operatorTeam(ADMIN_EMAIL);
  const existing = await readClientConfig(configPath);
  if (existing) {
    const config = { ...existing, api_url: apiUrl };
    if (existing.api_url !== apiUrl) await writeClientConfig(configPath, config);
    return { configPath, config };
  }
  if (operatorTeam) return { configPath };
  const password = randomBytes(18).toString("base64url");
  const user = await services.accounts.signup(ADMIN_EMAIL, password);
  await services.accounts.operatorTeam(ADMIN_EMAIL);
  const key = await services.apiKeys.create(
    { kind: "user", userId: user.id, teamId: user.teamId, role: "owner" },
    "single-host",
  );
  const config = { api_url: apiUrl, api_key: key.key };
  await writeClientConfig(configPath, config);
  return { configPath, config, admin: { email: ADMIN_EMAIL, password, teamId: user.teamId } };
}
