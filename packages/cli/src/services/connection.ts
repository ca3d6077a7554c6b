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
  const where =
    config.sources.apiUrl === "file"
      ? `api_url in ${config.configPath}`
      : "--api-url / WRENN_API_URL";
  return { apiUrl: checkServerUrl(config.apiUrl, where), apiKey: config.apiKey };
}

/** The URL, or a CliError naming where it came from: fetch's bare "Invalid URL" names nothing. */
export function checkServerUrl(url: string, where: string): string {
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {}
  if (protocol !== "http:" && protocol !== "https:") {
    throw new CliError(
      "invalid_argument",
      `${where} is ${JSON.stringify(url)}, not an http:// or https:// URL.`,
      "Example: --api-url http://127.0.0.1:3000",
    );
  }
  return url;
}

export function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
