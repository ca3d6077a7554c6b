import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Everything the agent reads from its environment (`WRENN_*`). */
export interface AgentConfig {
  /** `WRENN_AGENT_DIR`, default `${WRENN_DATA_DIR:-~/.wrenn}/agent`. */
  agentDir: string;
  /** `WRENN_AGENT_HOST`, default 127.0.0.1. */
  host: string;
  /** `WRENN_AGENT_PORT`, default 5007. */
  port: number;
  /** `WRENN_ENVD_DIR`: the host directory holding envd.js, mounted into every sandbox. */
  envdDir: string;
  /** `WRENN_LOG_LEVEL`, default info. */
  logLevel: string;
  /**
   * `WRENN_AGENT_TOKEN`: when set, every request over the network (RPC and envd proxy) must
   * carry `authorization: Bearer <token>`. Needed whenever the agent listens beyond loopback.
   */
  token?: string;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const dataDir = env.WRENN_DATA_DIR || join(homedir(), ".wrenn");
  const port = Number(env.WRENN_AGENT_PORT || 5007);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`WRENN_AGENT_PORT: not a port: ${env.WRENN_AGENT_PORT}`);
  }
  return {
    agentDir: resolve(env.WRENN_AGENT_DIR || join(dataDir, "agent")),
    host: env.WRENN_AGENT_HOST || "127.0.0.1",
    port,
    envdDir: resolve(env.WRENN_ENVD_DIR || defaultEnvdDir()),
    logLevel: env.WRENN_LOG_LEVEL || "info",
    token: env.WRENN_AGENT_TOKEN || undefined,
  };
}

/** The envd bundle of this checkout/installation (packages/envd/dist). */
export function defaultEnvdDir(): string {
  try {
    return dirname(fileURLToPath(import.meta.resolve("@wrenn/envd")));
  } catch {
    // Not resolvable (dist not built yet): the workspace layout is the best guess.
    return resolve(dirname(fileURLToPath(import.meta.url)), "../../../envd/dist");
  }
}
