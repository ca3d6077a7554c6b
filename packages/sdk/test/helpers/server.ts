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

/** The agent's smallest template (busybox + host node); builds in under a second. */
export const TEMPLATE = "test-minimal";

/** A real single-host server (SQLite, embedded agent, real sandboxes) on a loopback port. */
export interface TestServer {
  url: string;
  apiKey: string;
  /** The server's data dir; holds the `config.json` its first run wrote. */
  dataDir: string;
  host: SingleHost;
  /** Destroys every sandbox, stops the server, removes its files, restores the firewall. */
  close(): Promise<void>;
}

/**
 * Starts the server the SDK tests talk to. Needs root, bubblewrap, iproute2, nftables or
 * iptables, e2fsprogs and util-linux, like the server's own single-host tests. Its warm pool is
 * the default one (`auto`) unless `warmPool` says otherwise: the default is what gets tested.
 */
export async function startTestServer(
  opts: { warmPool?: WarmPoolSetting } = {},
): Promise<TestServer> {
  const restoreHost = await keepHostFirewallState();
  const dataDir = await mkdtemp(join(tmpdir(), "wrenn-sdk-"));
  let host: SingleHost | undefined;
  const close = async () => {
    if (host) {
      const runtime = host.embedded.agent.runtime;
      for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
      await host.close();
    }
    await rm(dataDir, { recursive: true, force: true });
    await restoreHost();
  };
  try {
    const config = loadConfig({
      WRENN_DATA_DIR: dataDir,
      WRENN_DEFAULT_TEMPLATE: TEMPLATE,
      WRENN_PORT: "0",
    });
    host = await startSingleHost(config, pino({ level: process.env.WRENN_TEST_LOG ?? "silent" }), {
      ...(opts.warmPool ? { warmPool: opts.warmPool } : {}),
      reconcileIntervalMs: 1_000,
    });
    await host.ready;
    const url = host.http?.url;
    if (!url) throw new Error("the test server is not listening");
    const client = (await bootstrapSingleHost(host.services, dataDir, url)).config;
    if (!client) throw new Error("bootstrap made no client config");
    return { url, apiKey: client.api_key, dataDir, host, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The server's namespace runtime (its warm pool, for tests that wait on it). */
export function namespaceRuntime(server: TestServer): NamespaceRuntime {
  return (server.host.embedded.agent.runtime as RuntimeSet).runtime(
    "namespace",
  ) as NamespaceRuntime;
}

/** Small sandboxes: the tests need little, and several servers may share this host. */
export const SMALL = { template: TEMPLATE, memoryMb: 256, diskSizeMb: 128 } as const;
