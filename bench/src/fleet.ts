import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keepHostFirewallState } from "@wrenn/agent";
import { bootstrapSingleHost, loadConfig, readClientConfig, startSingleHost } from "@wrenn/server";
import pino from "pino";
// The fleet harness of the server's integration suite: servers and agents as processes.
import {
  agentCredentials,
  apiClient,
  type FleetAgent,
  type FleetServer,
  freePort,
  startFleetAgent,
  startFleetServer,
  stopAgentWithSandboxes,
} from "../../packages/server/test/helpers/fleet.js";
import { until } from "../../packages/server/test/helpers/processes.js";
import { postgresBinDir, startThrowawayPostgres } from "./postgres.js";
import { type Figure, msSince, percentile } from "./stats.js";

const TEMPLATE = "test-minimal";
const FIRST_RUNS = 10;
const SPREAD = 100;
const CONCURRENCY = 10;
const STALE_SEC = 5;

type Api = ReturnType<typeof apiClient>;

/** Create → first exec → kill, `runs` times; the ms of each create → exec. */
async function createThenExec(api: Api, runs: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const start = process.hrtime.bigint();
    const made = await api<{ id: string }>("POST", "/v1/sandboxes", {
      memory_mb: 128,
      disk_size_mb: 64,
    });
    if (made.status !== 201) throw new Error(`create: ${made.status} ${JSON.stringify(made.body)}`);
    const run = await api("POST", `/v1/sandboxes/${made.body.id}/exec`, { cmd: "true" });
    if (run.status !== 200) throw new Error(`exec: ${run.status}`);
    if (i > 0) samples.push(msSince(start)); // the first builds the template
    await api("DELETE", `/v1/sandboxes/${made.body.id}`);
  }
  return samples;
}

/**
 * The fleet: create → first exec on a three-host fleet (PostgreSQL, a server process, three
 * agent processes) next to a single-host server in the same run; how long an agent's death
 * takes to show as `unreachable`; and 100 sandboxes spread over the three hosts.
 */
export async function benchFleet(): Promise<Figure[]> {
  const suite = "fleet";
  const figures: Figure[] = [];
  const bin = postgresBinDir();
  if (!bin) throw new Error("the fleet bench needs PostgreSQL: apt-get install -y postgresql");
  const restoreHost = await keepHostFirewallState();

  // Baseline: single-host, no warm pool (the fleet's agents keep none either).
  const singleDir = await mkdtemp(join(tmpdir(), "wrenn-bench-single-"));
  const single = await startSingleHost(
    loadConfig({ WRENN_DATA_DIR: singleDir, WRENN_DEFAULT_TEMPLATE: TEMPLATE, WRENN_PORT: "0" }),
    pino({ level: "silent" }),
    { warmPool: [] },
  );
  let singleP50: number;
  try {
    await single.ready;
    const url = single.http?.url ?? "";
    const client = (await bootstrapSingleHost(single.services, singleDir, url)).config;
    if (!client) throw new Error("bootstrap made no client config");
    singleP50 = percentile(
      await createThenExec(
        apiClient(() => url, client.api_key),
        FIRST_RUNS,
      ),
      50,
    );
  } finally {
    await single.close();
    await rm(singleDir, { recursive: true, force: true });
  }

  const pg = startThrowawayPostgres(bin);
  const logDir = mkdtempSync(join(tmpdir(), "wrenn-bench-fleet-"));
  let server: FleetServer | undefined;
  const agents: FleetAgent[] = [];
  try {
    server = await startFleetServer(
      "server",
      pg.url,
      {
        WRENN_JWT_SECRET: "bench-secret-bench-secret-bench-secret",
        WRENN_DEFAULT_TEMPLATE: TEMPLATE,
        WRENN_HEARTBEAT_SEC: "1",
        WRENN_HOST_STALE_SEC: String(STALE_SEC),
        WRENN_RECONCILE_INTERVAL_MS: "200",
        WRENN_LOG_LEVEL: "warn",
      },
      logDir,
    );
    const dataDir = server.dataDir;
    const key = (
      await until("the admin's client config", () => readClientConfig(join(dataDir, "config.json")))
    ).api_key;
    const api = apiClient(() => server?.url ?? "", key);
    for (const i of [0, 1, 2]) {
      const token = await api<{ token: string }>("POST", "/v1/hosts/tokens", { shared: true });
      const dir = join(logDir, `agent-${i}`);
      mkdirSync(dir);
      agents.push(
        startFleetAgent(
          `agent-${i}`,
          {
            dir,
            port: await freePort(),
            cidr: `10.251.${i}.0/24`,
            serverUrl: server.url,
            token: token.body.token,
          },
          { WRENN_HEARTBEAT_SEC: "1", WRENN_LOG_LEVEL: "warn" },
          logDir,
        ),
      );
    }
    await until("three ready hosts", async () => {
      const { body } = await api<{ hosts: { state: string }[] }>("GET", "/v1/hosts");
      return body.hosts.filter((h) => h.state === "ready").length === 3;
    });
    // Every host builds its template once, outside the measurement.
    const hostIds = agents.map((a) => agentCredentials(a.dir).host_id);
    for (const hostId of hostIds) {
      const warm = await api<{ id: string }>("POST", "/v1/sandboxes", {
        host_id: hostId,
        memory_mb: 128,
        disk_size_mb: 64,
      });
      await api("DELETE", `/v1/sandboxes/${warm.body.id}`);
    }
    const fleetP50 = percentile(await createThenExec(api, FIRST_RUNS), 50);
    figures.push(
      {
        suite,
        name: "create → first exec p50, single host",
        value: singleP50,
        unit: "ms",
        note: "baseline, no warm pool",
      },
      {
        suite,
        name: "create → first exec p50, three-host fleet",
        value: fleetP50,
        unit: "ms",
        note: `${(fleetP50 / singleP50).toFixed(2)}× single host`,
      },
    );

    // 100 sandboxes over three hosts, CONCURRENCY creates at a time.
    const createMs: number[] = [];
    const made: { id: string; host_id: string }[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < SPREAD) {
          next++;
          const start = process.hrtime.bigint();
          const res = await api<{ id: string; host_id: string }>("POST", "/v1/sandboxes", {
            memory_mb: 128,
            disk_size_mb: 64,
          });
          createMs.push(msSince(start));
          if (res.status === 201) made.push(res.body);
        }
      }),
    );
    const getMs: number[] = [];
    for (const s of made) {
      const start = process.hrtime.bigint();
      await api("GET", `/v1/sandboxes/${s.id}`);
      getMs.push(msSince(start));
    }
    const perHost = hostIds.map((id) => made.filter((s) => s.host_id === id).length);
    figures.push(
      {
        suite,
        name: `${SPREAD} sandboxes: created`,
        value: made.length,
        unit: "count",
        note: `per host ${perHost.join(" / ")}`,
      },
      {
        suite,
        name: `${SPREAD} sandboxes: spread (max/min per host)`,
        value: Math.max(...perHost) / Math.max(1, Math.min(...perHost)),
        unit: "ratio",
        note: "1 = even",
      },
      {
        suite,
        name: `create p99 (${CONCURRENCY} at a time)`,
        value: percentile(createMs, 99),
        unit: "ms",
        note: `p50 ${percentile(createMs, 50).toFixed(0)} ms`,
      },
      {
        suite,
        name: `GET /v1/sandboxes/{id} p99 with ${made.length} live`,
        value: percentile(getMs, 99),
        unit: "ms",
        note: `p50 ${percentile(getMs, 50).toFixed(1)} ms`,
      },
    );
    for (const s of made) await api("DELETE", `/v1/sandboxes/${s.id}`);

    // An agent's death → its host unreachable.
    const victim = agents[2] as FleetAgent;
    const killed = process.hrtime.bigint();
    await victim.stop("SIGKILL");
    await until(
      "the host to be unreachable",
      async () =>
        (await api<{ state: string }>("GET", `/v1/hosts/${hostIds[2]}`)).body.state ===
        "unreachable",
      60_000,
      50,
    );
    figures.push({
      suite,
      name: "agent killed → host unreachable",
      value: msSince(killed),
      unit: "ms",
      note: `stale window ${STALE_SEC} s, heartbeat 1 s`,
    });
  } finally {
    // Whatever a failed run left: destroyed through the agent itself before it stops.
    for (const agent of agents) await stopAgentWithSandboxes(agent);
    await server?.stop();
    pg.stop();
    await restoreHost();
    // The agent killed on purpose left its ready disks mounted: unmount and detach them first.
    for (const mount of readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((line) => line.split(" ")[4] ?? "")
      .filter((m) => m.startsWith(logDir))
      .reverse()) {
      spawnSync("umount", ["-l", mount]);
    }
    for (const line of spawnSync("losetup", ["-a"]).stdout.toString().split("\n")) {
      if (line.includes(logDir)) spawnSync("losetup", ["-d", line.split(":")[0] ?? ""]);
    }
    rmSync(logDir, { recursive: true, force: true });
  }
  return figures;
}
