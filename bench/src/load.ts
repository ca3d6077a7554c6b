import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { keepHostFirewallState } from "@wrenn/agent";
import { readClientConfig } from "@wrenn/server";
// The fleet harness of the server's integration suite: server and agent as processes.
import {
  apiClient,
  type FleetAgent,
  type FleetServer,
  freePort,
  startFleetAgent,
  startFleetServer,
} from "../../packages/server/test/helpers/fleet.js";
import { until } from "../../packages/server/test/helpers/processes.js";
import { MemorySeries, memoryFigures, printSeries, probeEnv } from "./load-memory.js";
import { type Figure, msSince, percentile, round } from "./stats.js";

const TEMPLATE = "test-minimal";
/** Requests in flight at once, over all sandboxes. */
const CONCURRENCY = 16;
/** Creates (and at the end deletes) in flight at once. */
const CREATE_CONCURRENCY = 4;
const KINDS = ["exec", "write", "read", "list_dir", "list_sandboxes"] as const;
type Kind = (typeof KINDS)[number];

type Api = ReturnType<typeof apiClient>;

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw ? Number(raw) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

/**
 * A request whose answer is kept as text with its status, whatever it is: a body that is not
 * the JSON expected is reported as it came, not as a parse error that hides the status.
 */
async function raw(
  url: string,
  key: string,
  method: string,
  path: string,
  body?: { type: string; data: string },
) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { "x-api-key": key, ...(body ? { "content-type": body.type } : {}) },
    ...(body ? { body: body.data } : {}),
  });
  const text = await res.text();
  return { status: res.status, text };
}

const bytes = (data: string) => ({ type: "application/octet-stream", data });

/** The JSON answer's field, or undefined when the answer is not JSON. */
function field(text: string, name: string): unknown {
  try {
    return (JSON.parse(text) as Record<string, unknown>)[name];
  } catch {
    return undefined;
  }
}

/**
 * The load test (issue #13): a server and a standalone agent as processes on loopback hold
 * WRENN_LOAD_SANDBOXES sandboxes (default 100) under mixed exec, file and list traffic for
 * WRENN_LOAD_SECONDS (default 300), then stop by themselves. Prints the errors (goal 0), p50/p99
 * per operation kind, and the memory of the server and of the agent (goal: flat): read every
 * WRENN_LOAD_SAMPLE_SECONDS (default 10) after a forced GC by a bench-only probe, compared from
 * the end of warm-up (WRENN_LOAD_WARMUP_SECONDS, default a fifth of the run) to the end, with
 * the slope over that span, so a leak (a steady slope) shows apart from warm-up (a plateau).
 */
export async function benchLoad(): Promise<Figure[]> {
  const suite = "load";
  const sandboxCount = intFromEnv("WRENN_LOAD_SANDBOXES", 100);
  const seconds = intFromEnv("WRENN_LOAD_SECONDS", 300);
  const sampleSeconds = intFromEnv("WRENN_LOAD_SAMPLE_SECONDS", 10);
  const warmupSeconds = intFromEnv(
    "WRENN_LOAD_WARMUP_SECONDS",
    Math.max(1, Math.round(seconds / 5)),
  );
  const cidr = process.env.WRENN_SANDBOX_CIDR || "10.215.0.0/16";
  const base = mkdtempSync(join(tmpdir(), "wrenn-bench-load-"));
  const restoreHost = await keepHostFirewallState();
  let server: FleetServer | undefined;
  let agent: FleetAgent | undefined;
  const ids: string[] = [];
  let api: Api | undefined;
  try {
    server = await startFleetServer(
      "load-server",
      "",
      {
        WRENN_DEFAULT_TEMPLATE: TEMPLATE,
        WRENN_HEARTBEAT_SEC: "2",
        WRENN_LOG_LEVEL: "warn",
        // The whole load comes from one team on loopback: its limits are not the subject.
        WRENN_RATE_CREATE_TEAM_PER_MIN: "1000000",
        WRENN_TEAM_RUNNING_SANDBOXES: String(sandboxCount + 10),
        ...probeEnv(join(base, "server-memory.json")),
      },
      base,
    );
    const client = await until("the admin's client config", () =>
      readClientConfig(join((server as FleetServer).dataDir, "config.json")),
    );
    const key = client.api_key;
    const url = server.url;
    api = apiClient(() => url, key);
    const token = await api<{ token: string }>("POST", "/v1/hosts/tokens", { shared: true });
    if (token.status !== 201) throw new Error(`host token: ${token.status}`);
    const agentDir = join(base, "agent");
    mkdirSync(agentDir);
    agent = startFleetAgent(
      "load-agent",
      { dir: agentDir, port: await freePort(), cidr, serverUrl: url, token: token.body.token },
      {
        WRENN_HEARTBEAT_SEC: "2",
        WRENN_LOG_LEVEL: "warn",
        ...probeEnv(join(base, "agent-memory.json")),
      },
      base,
    );
    const apiNow = api;
    await until("a ready host", async () => {
      const { body } = await apiNow<{ hosts: { state: string }[] }>("GET", "/v1/hosts");
      return body.hosts.some((h) => h.state === "ready");
    });

    console.error(`bench load: creating ${sandboxCount} sandboxes…`);
    let next = 0;
    await Promise.all(
      Array.from({ length: CREATE_CONCURRENCY }, async () => {
        while (next < sandboxCount) {
          next++;
          const made = await apiNow<{ id: string }>("POST", "/v1/sandboxes", {
            template: TEMPLATE,
            memory_mb: 128,
            disk_size_mb: 64,
          });
          if (made.status !== 201)
            throw new Error(`create: ${made.status} ${JSON.stringify(made.body)}`);
          ids.push(made.body.id);
          const seeded = await raw(
            url,
            key,
            "PUT",
            `/v1/sandboxes/${made.body.id}/files?path=/tmp/load-read`,
            bytes("payload"),
          );
          if (seeded.status >= 300) throw new Error(`write: ${seeded.status} ${seeded.text}`);
        }
      }),
    );

    const samples = Object.fromEntries(KINDS.map((k) => [k, [] as number[]])) as Record<
      Kind,
      number[]
    >;
    const errors = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
    const firstError: Partial<Record<Kind, string>> = {};
    /** Each answers undefined on success, else what went wrong (the first is printed). */
    const failure = (ok: boolean, status: number, body: string) =>
      ok ? undefined : `${status} ${body.slice(0, 300)}`;
    const ops: Record<Kind, (id: string, n: number) => Promise<string | undefined>> = {
      exec: async (id) => {
        const res = await raw(url, key, "POST", `/v1/sandboxes/${id}/exec`, {
          type: "application/json",
          data: JSON.stringify({ cmd: "echo hi" }),
        });
        const ok = res.status === 200 && field(res.text, "stdout") === "hi\n";
        return failure(ok, res.status, res.text);
      },
      write: async (id, n) => {
        const path = `/v1/sandboxes/${id}/files?path=/tmp/load-${n % 8}`;
        const res = await raw(url, key, "PUT", path, bytes(`v${n}`));
        return failure(res.status < 300, res.status, res.text);
      },
      read: async (id) => {
        const res = await raw(url, key, "GET", `/v1/sandboxes/${id}/files?path=/tmp/load-read`);
        return failure(res.status === 200 && res.text === "payload", res.status, res.text);
      },
      list_dir: async (id) => {
        const path = `/v1/sandboxes/${id}/files/list?path=/tmp&depth=2`;
        const res = await raw(url, key, "GET", path);
        return failure(res.status === 200, res.status, res.text);
      },
      list_sandboxes: async () => {
        const res = await raw(url, key, "GET", "/v1/sandboxes?limit=100");
        return failure(res.status === 200, res.status, res.text);
      },
    };

    const memory = [
      new MemorySeries("server", server.proc.pid as number, join(base, "server-memory.json")),
      new MemorySeries("agent", agent.proc.pid as number, join(base, "agent-memory.json")),
    ];
    const started = Date.now();
    const sampleAll = () => Promise.all(memory.map((m) => m.sample((Date.now() - started) / 1000)));
    await sampleAll();
    console.error(`bench load: ${seconds} s of traffic, ${CONCURRENCY} requests in flight…`);
    const startNs = process.hrtime.bigint();
    const deadline = started + seconds * 1000;
    let count = 0;
    const traffic = Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (Date.now() < deadline) {
          const n = count++;
          const kind = KINDS[n % KINDS.length] as Kind;
          const id = ids[Math.floor(Math.random() * ids.length)] as string;
          const start = process.hrtime.bigint();
          let failed: string | undefined;
          try {
            failed = await ops[kind](id, n);
          } catch (err) {
            failed = String(err);
          }
          samples[kind].push(msSince(start));
          if (failed !== undefined) {
            errors[kind]++;
            firstError[kind] ??= failed;
            console.error(
              `bench load: ${kind} failed at t=${msSince(startNs) / 1000} s: ${failed}`,
            );
          }
        }
      }),
    );
    // Memory is read while the traffic runs (a forced GC pauses each process briefly).
    for (let at = sampleSeconds; at < seconds; at += sampleSeconds) {
      const wait = started + at * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
      await sampleAll();
    }
    await traffic;
    await sampleAll();
    printSeries(memory);

    const figures: Figure[] = [];
    const totalErrors = KINDS.reduce((sum, k) => sum + errors[k], 0);
    figures.push({
      suite,
      name: `errors (${count} requests, ${sandboxCount} sandboxes, ${seconds} s)`,
      value: totalErrors,
      unit: "count",
      note: totalErrors === 0 ? "goal 0: met" : `goal 0: NOT met ${JSON.stringify(firstError)}`,
    });
    for (const kind of KINDS) {
      figures.push(
        {
          suite,
          name: `${kind} p50`,
          value: round(percentile(samples[kind], 50)),
          unit: "ms",
          note: `${samples[kind].length} requests, ${errors[kind]} errors`,
        },
        { suite, name: `${kind} p99`, value: round(percentile(samples[kind], 99)), unit: "ms" },
      );
    }
    for (const series of memory) figures.push(...memoryFigures(suite, series, warmupSeconds));
    return figures;
  } finally {
    // Everything goes, even after a failure: sandboxes, then the agent and the server.
    const left = [...ids];
    await Promise.all(
      Array.from({ length: CREATE_CONCURRENCY }, async () => {
        for (let id = left.pop(); id; id = left.pop()) {
          await api?.("DELETE", `/v1/sandboxes/${id}`).catch(() => {});
        }
      }),
    );
    await agent?.stop();
    await server?.stop();
    await restoreHost();
    rmSync(base, { recursive: true, force: true });
  }
}
