import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  AddressPool,
  defaultEnvdDir,
  keepHostFirewallState,
  NamespaceRuntime,
  silentLogger,
} from "@wrenn/agent";
import { Process } from "@wrenn/proto/process";
import { loadConfig, type SingleHost, startSingleHost } from "@wrenn/server";
import pino from "pino";
import { bareHttpLoad, load } from "./autocannon.js";
import { postgresBinDir, startThrowawayPostgres } from "./postgres.js";
import { type Figure, msSince, percentile, timeRuns } from "./stats.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const TEMPLATE = "test-minimal";
const TRANSFER_MIB = 256;
const EXEC_RUNS = 200;
/** Connections the load generator keeps open. */
const CONNECTIONS = 32;

function mbPerSec(bytes: number, ms: number): number {
  return bytes / MiB / (ms / 1000);
}

interface Engine {
  name: "sqlite" | "postgres";
  databaseUrl?: string;
}

/** A single-host server (embedded agent, real sandboxes) on `engine`, with a key and a sandbox. */
async function startBenchServer(engine: Engine, dir: string) {
  const agentDir = join(dir, "agent");
  const config = loadConfig({
    WRENN_DATA_DIR: dir,
    WRENN_PORT: "0",
    WRENN_DEFAULT_TEMPLATE: TEMPLATE,
    ...(engine.databaseUrl ? { WRENN_DATABASE_URL: engine.databaseUrl } : {}),
  });
  // Logged at info as in production (one line per request), written where nobody reads it.
  const logger = pino({ level: "info" }, pino.destination({ dest: "/dev/null", sync: false }));
  const host: SingleHost = await startSingleHost(config, logger, {
    agentDir,
    runtime: new NamespaceRuntime({
      agentDir,
      envdDir: defaultEnvdDir(),
      logger: silentLogger(),
      // Beside the agent suite's ranges (10.214.0.0–10.214.11.255).
      addressPool: new AddressPool(process.env.WRENN_SANDBOX_CIDR?.trim() || "10.214.12.0/22"),
    }),
    warmPool: [],
  });
  try {
    await host.ready;
    const { services } = host;
    const email = "bench@example.com";
    const password = "correct horse battery";
    await services.accounts.signup(email, password);
    const { token } = await services.accounts.login(email, password);
    const user = await services.accounts.authenticateToken(token);
    const { key } = await services.apiKeys.create(user, "bench");
    const url = host.http?.url as string;
    const headers = { "x-api-key": key };
    const res = await fetch(`${url}/v1/sandboxes`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ template: TEMPLATE, memory_mb: 512, disk_size_mb: 1024 }),
    });
    if (res.status !== 201) throw new Error(`create: ${res.status} ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    return { host, url, headers, id };
  } catch (err) {
    await host.close();
    throw err;
  }
}

export async function benchServer(): Promise<Figure[]> {
  if (process.getuid?.() !== 0) throw new Error("the server bench needs root (real sandboxes)");
  const figures: Figure[] = [];
  const add = (name: string, value: number, unit: string, note?: string) =>
    figures.push({ suite: "server", name, value, unit, ...(note ? { note } : {}) });
  const restoreHost = await keepHostFirewallState();
  const dirs: string[] = [];
  try {
    const bare = await bareHttpLoad(CONNECTIONS);
    add(
      "bare node:http JSON req/s",
      bare.rps,
      "req/s",
      `baseline, same client, ${CONNECTIONS} conns`,
    );

    const engines: Engine[] = [{ name: "sqlite" }];
    const pgBin = postgresBinDir();
    const pg = pgBin ? startThrowawayPostgres(pgBin) : undefined;
    if (pg) engines.push({ name: "postgres", databaseUrl: pg.url });
    else console.error("bench: server on PostgreSQL skipped (apt-get install -y postgresql)");
    try {
      for (const engine of engines) {
        const dir = await mkdtemp(join(tmpdir(), `wrenn-bench-server-${engine.name}-`));
        dirs.push(dir);
        const { host, url, headers, id } = await startBenchServer(engine, dir);
        try {
          const get = await load(`${url}/v1/sandboxes/${id}`, {
            headers,
            connections: CONNECTIONS,
          });
          if (get.non2xx > 0) throw new Error(`GET answered ${get.non2xx} non-2xx responses`);
          add(
            `GET /v1/sandboxes/{id} req/s (${engine.name})`,
            get.rps,
            "req/s",
            `${(get.rps / bare.rps).toFixed(2)}× bare node:http${engine.name === "sqlite" ? "; goal ≥ 5,000" : ""}`,
          );
          add(
            `GET /v1/sandboxes/{id} server CPU (${engine.name})`,
            get.cpuUsPerRequest,
            "µs/req",
            `bare node:http ${Math.round(bare.cpuUsPerRequest)} µs`,
          );

          const execTrue = async () => {
            const res = await fetch(`${url}/v1/sandboxes/${id}/exec`, {
              method: "POST",
              headers: { ...headers, "content-type": "application/json" },
              body: JSON.stringify({ cmd: "true", args: [] }),
            });
            const body = (await res.json()) as { exit_code?: number };
            if (res.status !== 200 || body.exit_code !== 0) {
              throw new Error(`exec: ${res.status} ${JSON.stringify(body)}`);
            }
          };
          const viaServer = await timeRuns(EXEC_RUNS, execTrue, 10);
          const envd = createClient(
            Process,
            createConnectTransport({
              baseUrl: `http://${host.embedded.agent.runtime.get(id).envdAddress}`,
              httpVersion: "1.1",
            }),
          );
          const direct = await timeRuns(EXEC_RUNS, async () => {
            for await (const _ of envd.start({ process: { cmd: "true" } })) {
              // drained: the round trip ends with the process's end event
            }
          });
          const directP50 = percentile(direct, 50);
          add(`exec true p50, envd direct (${engine.name})`, directP50, "ms", "baseline");
          add(
            `exec true p50, via server (${engine.name})`,
            percentile(viaServer, 50),
            "ms",
            `${(percentile(viaServer, 50) / directP50).toFixed(1)}× direct; server→agent→envd; goal ≤ 5`,
          );
          add(`exec true p99, via server (${engine.name})`, percentile(viaServer, 99), "ms");

          if (engine.name === "sqlite") figures.push(...(await transfers(url, headers, id, dir)));
        } finally {
          const runtime = host.embedded.agent.runtime;
          for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
          await host.close();
        }
      }
    } finally {
      pg?.stop();
    }
  } finally {
    const mounts = await readFile("/proc/self/mounts", "utf8");
    for (const dir of dirs) {
      // Never rm -rf across a mount something failed to remove.
      if (mounts.includes(`${dir}/`)) console.error(`bench: ${dir} still has mounts, kept`);
      else await rm(dir, { recursive: true, force: true });
    }
    await restoreHost();
  }
  return figures;
}

/** 256 MiB up and down through the server (raw streamed body; curl as client) beside `cp`. */
async function transfers(
  url: string,
  headers: Record<string, string>,
  id: string,
  dir: string,
): Promise<Figure[]> {
  const bytes = TRANSFER_MIB * MiB;
  const source = join(dir, "source.bin");
  await run("sh", ["-c", `head -c ${bytes} /dev/urandom > "$0"`, source]);
  let start = process.hrtime.bigint();
  await run("cp", [source, join(dir, "copy.bin")]);
  const cp = mbPerSec(bytes, msSince(start));

  const fileUrl = `${url}/v1/sandboxes/${id}/files?path=${encodeURIComponent("/tmp/bench.bin")}`;
  const auth = Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
  start = process.hrtime.bigint();
  await run("curl", [
    "-sfS",
    "-o",
    "/dev/null",
    ...auth,
    "-H",
    "content-type: application/octet-stream",
    "-T",
    source,
    fileUrl,
  ]);
  const up = mbPerSec(bytes, msSince(start));
  const downloaded = join(dir, "downloaded.bin");
  start = process.hrtime.bigint();
  await run("curl", ["-sfS", "-o", downloaded, ...auth, fileUrl]);
  const down = mbPerSec(bytes, msSince(start));
  if ((await stat(downloaded)).size !== bytes) throw new Error("download size differs");
  const vsCp = (v: number) => `${(v / cp).toFixed(2)}× cp`;
  return [
    { suite: "server", name: `cp ${TRANSFER_MIB} MiB`, value: cp, unit: "MB/s", note: "baseline" },
    {
      suite: "server",
      name: `upload ${TRANSFER_MIB} MiB via server`,
      value: up,
      unit: "MB/s",
      note: `${vsCp(up)}, PUT raw body, curl`,
    },
    {
      suite: "server",
      name: `download ${TRANSFER_MIB} MiB via server`,
      value: down,
      unit: "MB/s",
      note: `${vsCp(down)}, curl`,
    },
  ];
}
