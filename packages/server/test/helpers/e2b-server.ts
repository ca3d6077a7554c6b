import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keepHostFirewallState } from "@wrenn/agent";
import pino from "pino";
import { loadConfig } from "../../src/config/index.js";
import { bootstrapSingleHost, startSingleHost } from "../../src/single-host/index.js";

// A real single-host Wrenn server for E2B's SDK (the `e2b` package, unchanged), configured the
// way its users do: E2B_API_URL, E2B_SANDBOX_URL, E2B_DOMAIN and E2B_API_KEY only.

export const E2B_TEST_TEMPLATE = "test-minimal";
export const E2B_TEST_DOMAIN = "example.test";

/** A resolver entry for `*.example.test` → loopback, for this process's requests only. */
export function exampleTestLookup(
  hostname: string,
  options: LookupOptions,
  callback: (
    err: NodeJS.ErrnoException | null,
    address: string | LookupAddress[],
    family?: number,
  ) => void,
): void {
  if (hostname === E2B_TEST_DOMAIN || hostname.endsWith(`.${E2B_TEST_DOMAIN}`)) {
    if (options.all) callback(null, [{ address: "127.0.0.1", family: 4 }]);
    else callback(null, "127.0.0.1", 4);
    return;
  }
  dnsLookup(hostname, options, callback as never);
}

/** A request to `http://<host>:<port><path>` with `*.example.test` resolved to loopback. */
export function getByName(
  host: string,
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
  body?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host, port, path, method, headers, lookup: exampleTestLookup as never },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export interface E2bServer {
  url: string;
  port: number;
  /** An `e2b_<hex>` key, made through the public API as a user would. */
  key: string;
  /** Destroys what is left, stops the server, restores the environment and the firewall. */
  close(): Promise<void>;
}

/**
 * Starts the server with WRENN_DOMAIN=example.test on its own sandbox range (`cidrPrefix`.x.0/24
 * picked at random), makes an e2b key and points the four E2B_* variables at it.
 */
export async function startE2bServer(cidrPrefix: string): Promise<E2bServer> {
  const restoreHost = await keepHostFirewallState();
  const dataDir = await mkdtemp(join(tmpdir(), "wrenn-e2b-"));
  const names = [
    "WRENN_SANDBOX_CIDR",
    "E2B_API_URL",
    "E2B_SANDBOX_URL",
    "E2B_DOMAIN",
    "E2B_API_KEY",
  ] as const;
  const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
  process.env.WRENN_SANDBOX_CIDR = `${cidrPrefix}.${Math.floor(Math.random() * 250)}.0/24`;
  let host: Awaited<ReturnType<typeof startSingleHost>> | undefined;
  const close = async () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
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
      WRENN_DEFAULT_TEMPLATE: E2B_TEST_TEMPLATE,
      WRENN_PORT: "0",
      WRENN_DOMAIN: E2B_TEST_DOMAIN,
    });
    host = await startSingleHost(config, pino({ level: process.env.WRENN_TEST_LOG ?? "silent" }), {
      warmPool: [],
      reconcileIntervalMs: 1_000,
    });
    await host.ready;
    const url = host.http?.url ?? "";
    const boot = await bootstrapSingleHost(host.services, dataDir, url);
    if (!boot.admin) throw new Error("bootstrap made no admin");
    const login = await fetch(`${url}/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: boot.admin.email, password: boot.admin.password }),
    });
    const { token } = (await login.json()) as { token: string };
    const created = await fetch(`${url}/v1/api-keys`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ format: "e2b" }),
    });
    if (created.status !== 201) throw new Error(`e2b key: ${created.status}`);
    const { key } = (await created.json()) as { key: string };
    process.env.E2B_API_URL = url;
    process.env.E2B_SANDBOX_URL = url;
    process.env.E2B_DOMAIN = E2B_TEST_DOMAIN;
    process.env.E2B_API_KEY = key;
    return { url, port: Number(new URL(url).port), key, close };
  } catch (err) {
    await close();
    throw err;
  }
}
