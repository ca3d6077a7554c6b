import { loadConfig } from "@wrenn/sdk";
import { readConfig } from "../config/index.js";
import { CliError } from "../errors/index.js";

export { DEFAULT_API_URL } from "@wrenn/sdk";

export interface Connection {
  apiUrl: string;
  apiKey: string;
}

/**
 * Flags (which oclif already filled from WRENN_API_URL / WRENN_API_KEY) win, then the config file
 * that `wrenn login` and `wrenn server start` write, then the local default URL — the SDK's rules.
 */
export async function resolveConnection(flags: {
  apiUrl?: string | undefined;
  apiKey?: string | undefined;
}): Promise<Connection> {
  const config = await loadConfig({
    ...(flags.apiUrl ? { apiUrl: flags.apiUrl } : {}),
    ...(flags.apiKey ? { apiKey: flags.apiKey } : {}),
  });
  if (!config.apiKey) {
    // The SDK reads past a broken config file; say so rather than "none saved".
    if (config.configPath) await readConfig(config.configPath);
    throw new CliError(
      "missing_api_key",
      `No API key: none passed and none saved in ${config.configPath ?? "~/.wrenn/config.json"}.`,
      "Run `wrenn login`, set WRENN_API_KEY, or pass --api-key.",
    );
  }
  return { apiUrl: config.apiUrl, apiKey: config.apiKey };
}

export function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
