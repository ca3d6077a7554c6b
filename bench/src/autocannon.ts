import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";

/** Seconds of load per req/s figure. */
const LOAD_SECONDS = Number(process.env.WRENN_BENCH_LOAD_SECONDS || 10);
const autocannonBin = createRequire(import.meta.url).resolve("autocannon/autocannon.js");

export interface Load {
  rps: number;
  requests: number;
  non2xx: number;
  /** CPU this process spent per request while under load (the server's cost, client apart). */
  cpuUsPerRequest: number;
}

export interface LoadOptions {
  headers?: Record<string, string>;
  /** Keep-alive connections the load generator holds open. */
  connections: number;
}

/**
 * `GET url` under load from autocannon in its own process, so the load generator does not share
 * the server's event loop. A short warm-up first.
 */
export async function load(url: string, opts: LoadOptions): Promise<Load> {
  const once = async (seconds: number): Promise<Load> => {
    const args = [autocannonBin, "-j", "-c", String(opts.connections), "-d", String(seconds), url];
    for (const [name, value] of Object.entries(opts.headers ?? {})) {
      args.push("-H", `${name}=${value}`);
    }
    const cpu = process.cpuUsage();
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    const code = await new Promise((resolve) => child.on("exit", resolve));
    const used = process.cpuUsage(cpu);
    if (code !== 0) throw new Error(`autocannon exited ${code}: ${err.slice(-500)}`);
    const result = JSON.parse(out) as {
      requests: { average: number; total: number };
      non2xx: number;
      errors: number;
    };
    if (result.errors > 0) throw new Error(`autocannon: ${result.errors} connection errors`);
    return {
      rps: result.requests.average,
      requests: result.requests.total,
      non2xx: result.non2xx,
      cpuUsPerRequest: (used.user + used.system) / Math.max(1, result.requests.total),
    };
  };
  await once(2);
  return once(LOAD_SECONDS);
}

/** A sandbox as GET /v1/sandboxes/{id} describes it: the size of body the server answers. */
function sandboxSizedJson(): string {
  return JSON.stringify({
    id: "k3x9q2m7v1b8n4c6z0ta",
    template: "test-minimal",
    state: "running",
    vcpus: 1,
    memory_mb: 256,
    disk_size_mb: 1024,
    timeout_sec: 0,
    metadata: {},
    created_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
    last_active_at: new Date().toISOString(),
    stopped_at: null,
  });
}

/** The same client against plain node:http answering `body` (JSON): the ceiling. */
export async function bareHttpLoad(connections: number, body = sandboxSizedJson()): Promise<Load> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    return await load(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, {
      connections,
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}
