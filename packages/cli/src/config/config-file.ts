import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { CliError } from "../errors/index.js";

/** What `wrenn login` saves and `wrenn server start` writes on its first run (same file, same keys). */
export interface ClientConfig {
  api_url?: string;
  api_key?: string;
}

/**
 * The file the SDK reads: `WRENN_CONFIG`, else `$WRENN_DATA_DIR/config.json` (where the server's
 * first run writes it), else `~/.wrenn/config.json`.
 */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.WRENN_CONFIG || join(env.WRENN_DATA_DIR || join(homedir(), ".wrenn"), "config.json");
}

export async function readConfig(path = configPath()): Promise<ClientConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return {};
    throw new CliError("bad_config", `Cannot read the config file ${path} (${code}).`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  // A broken file is named, not taken for "no key saved" (or a JSON parser's stack).
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CliError(
      "bad_config",
      `The config file ${path} is not a JSON object.`,
      `Fix it, or delete it and run \`wrenn login\` again.`,
    );
  }
  const { api_url, api_key } = value as Record<string, unknown>;
  return {
    ...(typeof api_url === "string" ? { api_url } : {}),
    ...(typeof api_key === "string" ? { api_key } : {}),
  };
}

export async function writeConfig(config: ClientConfig, path = configPath()): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // Written whole then renamed, so a concurrent reader never sees half a key; 0600: it holds one.
  const temp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, path);
}

/** Drops the key and keeps the URL, so the next `wrenn login` only asks for a key. */
export async function forgetApiKey(path = configPath()): Promise<boolean> {
  const config = await readConfig(path);
  if (config.api_key === undefined) return false;
  if (config.api_url === undefined) await rm(path, { force: true });
  else await writeConfig({ api_url: config.api_url }, path);
  return true;
}
