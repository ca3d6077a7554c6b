import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  keepHostFirewallState,
  type NamespaceRuntime,
  type RuntimeSet,
  type WarmPoolSetting,
} from "@wrenn/agent";
import { bootstrapSingleHost, loadConfig, type SingleHost, startSingleHost } from "@wrenn/server";
import pino from "pino";

/** The template creates get (the server's default template here): test-minimal builds in a second. */
export const TEMPLATE = process.env.WRENN_BENCH_TEMPLATE || "test-minimal";

/** A single-host server with the settings a new user gets, and an API key for the SDK. */
export async function startServer(dataDir: string, warmPool?: WarmPoolSetting) {
  const config = loadConfig({
    WRENN_DATA_DIR: dataDir,
    WRENN_PORT: "0",
    WRENN_DEFAULT_TEMPLATE: TEMPLATE,
  });
  // Logged at info as in production (one line per request), written where nobody reads it.
  const logger = pino({ level: "info" }, pino.destination({ dest: "/dev/null", sync: false }));
  const host = await startSingleHost(config, logger, warmPool ? { warmPool } : {});
  try {
    await host.ready;
    const url = host.http?.url ?? "";
    // The first run's client config (kept in the data dir, so a restart finds it again).
    const { config: client } = await bootstrapSingleHost(host.services, dataDir, url);
    if (!client) throw new Error("bootstrap made no client config");
    const apiKey = client.api_key;
    const runtime = (host.embedded.agent.runtime as RuntimeSet).runtime(
      "namespace",
    ) as NamespaceRuntime;
    return { host, conn: { apiUrl: url, apiKey }, runtime, agentDir: join(dataDir, "agent") };
  } catch (err) {
    await host.close();
    throw err;
  }
}

export async function closeServer(host: SingleHost): Promise<void> {
  const runtime = host.embedded.agent.runtime;
  for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
  await host.close();
}

export type BenchServer = Awaited<ReturnType<typeof startServer>>;

/**
 * `fn` with a single-host server of its own ({@link startServer}) in a fresh data dir, keeping the
 * host's firewall state; afterwards its sandboxes, the server and the data dir go.
 */
export async function withSingleHost<T>(
  name: string,
  warmPool: WarmPoolSetting | undefined,
  fn: (server: BenchServer, dataDir: string) => Promise<T>,
): Promise<T> {
  const restoreHost = await keepHostFirewallState();
  const dataDir = await mkdtemp(join(tmpdir(), `wrenn-bench-${name}-`));
  try {
    const server = await startServer(join(dataDir, "default"), warmPool);
    try {
      return await fn(server, dataDir);
    } finally {
      await closeServer(server.host);
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
    await restoreHost();
  }
}
