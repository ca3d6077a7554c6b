import { homedir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { envdDistDir } from "@wrenn/envd";
import type { WarmPoolSetting } from "../runtime/index.js";
import { isSafeName } from "../template/index.js";

/** The template a sandbox gets when the request names none. */
export const DEFAULT_TEMPLATE = "base";

/** Everything the agent reads from its environment (`WRENN_*`). */
export interface AgentConfig {
  /** `WRENN_AGENT_DIR`, default `${WRENN_DATA_DIR:-~/.wrenn}/agent`. */
  agentDir: string;
  /** `WRENN_AGENT_HOST`, default 127.0.0.1 (0.0.0.0 in fleet mode). */
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
  /**
   * `WRENN_WARM_POOL`: ready sandboxes kept per template, so creates skip the launch. `auto`
   * (default): sized from the recent create rate and bursts per template and snapshot, within
   * `WRENN_WARM_POOL_MEMORY_MB`; or a count for the default template (0 disables); or
   * `template=count,…`.
   */
  warmPool: WarmPoolSetting;
  /**
   * `WRENN_SERVER_URL`: the control plane to register with and heartbeat to (fleet mode). Unset:
   * stand-alone, driven by whoever holds WRENN_AGENT_TOKEN.
   */
  serverUrl?: string;
  /** `WRENN_REGISTRATION_TOKEN`: one-time token for the first start in fleet mode. */
  registrationToken?: string;
  /** `WRENN_AGENT_ADVERTISE_URL`: where the server reaches this agent (default: its listen URL). */
  advertiseUrl?: string;
  /** `WRENN_SERVER_CA`: PEM file of the CA the server's certificate must chain to. */
  serverCa?: string;
  /** `WRENN_TLS_CERT` / `WRENN_TLS_KEY`: PEM files; when both are set the agent serves HTTPS. */
  tlsCert?: string;
  tlsKey?: string;
  /** `WRENN_HEARTBEAT_SEC`: seconds between heartbeats (default: what the server says, else 10). */
  heartbeatSec?: number;
  /** `WRENN_CP_GRACE_SEC` (default 300): without the server this long, running sandboxes pause. */
  cpGraceSec: number;
  /**
   * `WRENN_RUNTIMES`: comma-separated runtimes to serve (namespace, microvm). Unset: every
   * runtime that works on this host; a named one that does not work stops the start.
   */
  runtimes?: string[];
  /** `WRENN_DEFAULT_RUNTIME`, default namespace: what a create without `runtime` gets. */
  defaultRuntime: string;
}

/** The runtimes an agent can serve. */
export const RUNTIME_NAMES = ["namespace", "microvm"] as const;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const dataDir = env.WRENN_DATA_DIR || join(homedir(), ".wrenn");
  const port = Number(env.WRENN_AGENT_PORT || 5007);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`WRENN_AGENT_PORT: not a port: ${env.WRENN_AGENT_PORT}`);
  }
  return {
    agentDir: resolve(env.WRENN_AGENT_DIR || join(dataDir, "agent")),
    // A fleet member is reached by its server over the network; a stand-alone agent by default
    // only from this host.
    host: env.WRENN_AGENT_HOST || (env.WRENN_SERVER_URL ? "0.0.0.0" : "127.0.0.1"),
    port,
    envdDir: resolve(env.WRENN_ENVD_DIR || defaultEnvdDir()),
    logLevel: env.WRENN_LOG_LEVEL || "info",
    token: env.WRENN_AGENT_TOKEN || undefined,
    warmPool: warmPoolFromEnv(env, DEFAULT_TEMPLATE),
    serverUrl: env.WRENN_SERVER_URL || undefined,
    registrationToken: env.WRENN_REGISTRATION_TOKEN || undefined,
    advertiseUrl: env.WRENN_AGENT_ADVERTISE_URL || undefined,
    serverCa: env.WRENN_SERVER_CA ? resolve(env.WRENN_SERVER_CA) : undefined,
    tlsCert: env.WRENN_TLS_CERT ? resolve(env.WRENN_TLS_CERT) : undefined,
    tlsKey: env.WRENN_TLS_KEY ? resolve(env.WRENN_TLS_KEY) : undefined,
    heartbeatSec: env.WRENN_HEARTBEAT_SEC
      ? seconds("WRENN_HEARTBEAT_SEC", env.WRENN_HEARTBEAT_SEC)
      : undefined,
    cpGraceSec: seconds("WRENN_CP_GRACE_SEC", env.WRENN_CP_GRACE_SEC || "300"),
    runtimes: env.WRENN_RUNTIMES ? parseRuntimes(env.WRENN_RUNTIMES) : undefined,
    defaultRuntime: parseRuntimes(
      env.WRENN_DEFAULT_RUNTIME || "namespace",
      "WRENN_DEFAULT_RUNTIME",
    )[0]!,
  };
}

function seconds(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`${name}: not a positive number of seconds: ${text}`);
  return n;
}

export function parseRuntimes(value: string, variable = "WRENN_RUNTIMES"): string[] {
  const names = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!(RUNTIME_NAMES as readonly string[]).includes(name)) {
      throw new Error(`${variable}: unknown runtime ${name} (known: ${RUNTIME_NAMES.join(", ")})`);
    }
  }
  if (names.length === 0) throw new Error(`${variable}: no runtime named`);
  return names;
}

/**
 * The warm pool `WRENN_WARM_POOL` and `WRENN_WARM_POOL_MEMORY_MB` ask for; a bare count is for
 * `defaultTemplate` (the one creates get when they name none).
 */
export function warmPoolFromEnv(env: NodeJS.ProcessEnv, defaultTemplate: string): WarmPoolSetting {
  return parseWarmPool(env.WRENN_WARM_POOL?.trim() || "auto", {
    defaultTemplate,
    memoryMb: env.WRENN_WARM_POOL_MEMORY_MB
      ? parseMemoryMb(env.WRENN_WARM_POOL_MEMORY_MB)
      : defaultWarmPoolMemoryMb(),
  });
}

/** A modest share of the host's memory: 5%, at least 128 MiB. */
export function defaultWarmPoolMemoryMb(): number {
  return Math.max(128, Math.floor((totalmem() * 0.05) / 2 ** 20));
}

function parseMemoryMb(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`WRENN_WARM_POOL_MEMORY_MB: not a whole number of MiB: ${text}`);
  }
  return n;
}

export function parseWarmPool(
  value: string,
  opts: { defaultTemplate?: string; memoryMb?: number } = {},
): WarmPoolSetting {
  const defaultTemplate = opts.defaultTemplate ?? DEFAULT_TEMPLATE;
  if (value.trim() === "auto") {
    return { mode: "auto", defaultTemplate, memoryMb: opts.memoryMb ?? defaultWarmPoolMemoryMb() };
  }
  const count = (text: string) => {
    const n = Number(text);
    if (text.trim() === "" || !Number.isInteger(n) || n < 0 || n > 64) {
      throw new Error(`WRENN_WARM_POOL: not auto or a count from 0 to 64: ${text}`);
    }
    return n;
  };
  if (!value.includes("=")) {
    const size = count(value);
    return size > 0 ? [{ template: defaultTemplate, size }] : [];
  }
  return value.split(",").map((entry) => {
    const [template = "", size = ""] = entry.split("=").map((s) => s.trim());
    if (!isSafeName(template)) {
      throw new Error(`WRENN_WARM_POOL: not a template name: ${template}`);
    }
    return { template, size: count(size) };
  });
}

/** The envd bundle of this installation (@wrenn/envd's dist folder): bound into every sandbox. */
export function defaultEnvdDir(): string {
  return envdDistDir;
}
