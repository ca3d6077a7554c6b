import { AuthenticationError } from "../errors/index.js";

/** Where the server is and how to authenticate; every public call accepts these. */
export interface ConnectionOpts {
  /** API key (`wrn_…`); default `WRENN_API_KEY`, then the config file. */
  apiKey?: string;
  /** Server URL; default `WRENN_API_URL`, then the config file, then `http://127.0.0.1:3000`. */
  apiUrl?: string;
}

/** Where a resolved setting came from. */
export type ConfigSource = "option" | "env" | "file" | "default";

/** The settings the SDK will use, and where each came from (what `wrenn config` shows). */
export interface ResolvedConfig {
  apiUrl: string;
  apiKey: string | undefined;
  sources: { apiUrl: ConfigSource; apiKey: ConfigSource | undefined };
  /** The config file that was looked at (it may not exist). */
  configPath: string | undefined;
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions extends ConnectionOpts {
  /** The environment to read; default `process.env` where there is one. */
  env?: Record<string, string | undefined>;
  /** The config file; default `WRENN_CONFIG`, else `$WRENN_DATA_DIR/config.json`, else `~/.wrenn/config.json`. */
  configPath?: string;
}

/** Used when nothing else says where the server is: single-host mode's default address. */
export const DEFAULT_API_URL = "http://127.0.0.1:3000";

const processEnv = (): Record<string, string | undefined> =>
  (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};

const isNode = () =>
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node ===
  "string";

/** The config file the single-host server writes (`{api_url, api_key}`), read only under Node. */
async function readConfigFile(
  env: Record<string, string | undefined>,
  explicit: string | undefined,
): Promise<{ path: string | undefined; apiUrl?: string; apiKey?: string }> {
  if (!isNode()) return { path: undefined };
  const [{ readFile }, { homedir }, { join }] = await Promise.all([
    import("node:fs/promises"),
    import("node:os"),
    import("node:path"),
  ]);
  const path =
    explicit ??
    (env.WRENN_CONFIG ||
      (env.WRENN_DATA_DIR
        ? join(env.WRENN_DATA_DIR, "config.json")
        : join(homedir(), ".wrenn", "config.json")));
  try {
    const value = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
    return {
      path,
      ...(typeof value.api_url === "string" && value.api_url ? { apiUrl: value.api_url } : {}),
      ...(typeof value.api_key === "string" && value.api_key ? { apiKey: value.api_key } : {}),
    };
  } catch {
    return { path }; // missing or unreadable: the other sources decide
  }
}

/**
 * Resolves the API URL and key: options first, then `WRENN_API_URL` / `WRENN_API_KEY`, then the
 * config file written by the server's first run. Says where each came from.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const env = options.env ?? processEnv();
  const needFile = !(options.apiUrl ?? env.WRENN_API_URL) || !(options.apiKey ?? env.WRENN_API_KEY);
  const file = needFile
    ? await readConfigFile(env, options.configPath)
    : { path: options.configPath ?? env.WRENN_CONFIG };

  const pick = (option?: string, fromEnv?: string, fromFile?: string) =>
    option
      ? { value: option, source: "option" as const }
      : fromEnv
        ? { value: fromEnv, source: "env" as const }
        : fromFile
          ? { value: fromFile, source: "file" as const }
          : undefined;

  const url = pick(options.apiUrl, env.WRENN_API_URL, file.apiUrl);
  const key = pick(options.apiKey, env.WRENN_API_KEY, file.apiKey);
  return {
    apiUrl: (url?.value ?? DEFAULT_API_URL).replace(/\/+$/, ""),
    apiKey: key?.value,
    sources: { apiUrl: url?.source ?? "default", apiKey: key?.source },
    configPath: file.path,
  };
}

/** {@link loadConfig}, failing with an {@link AuthenticationError} when no key is found. */
export async function requireConfig(
  options: LoadConfigOptions = {},
): Promise<ResolvedConfig & { apiKey: string }> {
  const config = await loadConfig(options);
  if (!config.apiKey) {
    throw new AuthenticationError(
      `no API key: pass apiKey, set WRENN_API_KEY, or start the server once to write ${
        config.configPath ?? "~/.wrenn/config.json"
      }`,
      { code: "missing_api_key" },
    );
  }
  return config as ResolvedConfig & { apiKey: string };
}
