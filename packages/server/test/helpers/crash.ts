import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { hostIfName, netnsName } from "@wrenn/agent";
import { expect } from "vitest";
import { leaksUnder } from "./host-state.js";
import { until } from "./processes.js";

/** The REST client of helpers/fleet.ts `apiClient`. */
export type Api = <T = unknown>(
  method: string,
  path: string,
  json?: unknown,
) => Promise<{ status: number; body: T }>;

export type StepKind = "create" | "pause" | "resume" | "snapshot" | "destroy";

/** A `WRENN_CRASH_AT` step (see @wrenn/agent crashPoint) and the operation that reaches it. */
export interface CrashStep {
  step: string;
  kind: StepKind;
}

/** The agent's steps (in the server too when its agent is embedded), one or more per operation. */
export const AGENT_STEPS: readonly CrashStep[] = [
  { step: "create:record", kind: "create" },
  { step: "create:disk", kind: "create" },
  { step: "create:network", kind: "create" },
  { step: "create:launch", kind: "create" },
  { step: "create:running", kind: "create" },
  { step: "pause:freeze", kind: "pause" },
  { step: "resume:thaw", kind: "resume" },
  { step: "snapshot:copy", kind: "snapshot" },
  { step: "snapshot:record", kind: "snapshot" },
  { step: "destroy:record", kind: "destroy" },
  { step: "destroy:kill", kind: "destroy" },
  { step: "destroy:network", kind: "destroy" },
];

/** The server's own steps: after its database write or its agent's answer. */
export const SERVER_STEPS: readonly CrashStep[] = [
  { step: "server:create:row", kind: "create" },
  { step: "server:create:agent", kind: "create" },
  { step: "server:pause:agent", kind: "pause" },
  { step: "server:resume:agent", kind: "resume" },
  { step: "server:snapshot:agent", kind: "snapshot" },
  { step: "server:destroy:agent", kind: "destroy" },
];

/** What a create that never got its answer asked for: the row must carry it. */
export const CRASHED_CREATE_TIMEOUT_SEC = 321;

interface Row {
  id: string;
  state: string;
  timeout_sec: number;
}

/** Host resources a sandbox made under `agentDir` that are still there (empty: nothing leaked). */
export async function sandboxLeftovers(agentDir: string, id: string): Promise<string[]> {
  const dir = join(agentDir, "sandboxes", id);
  const candidates = [
    dir,
    `/run/netns/${netnsName(id)}`,
    `/sys/class/net/${hostIfName(id)}`,
    ...["cpu", "cpuacct", "memory", "pids", "freezer", "unified"].map(
      (c) => `/sys/fs/cgroup/${c}/wrenn/${id}`,
    ),
    `/sys/fs/cgroup/wrenn/${id}`,
  ];
  const found = candidates.filter((path) => existsSync(path));
  found.push(...(await leaksUnder(dir)));
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(dir)) found.push(`process ${pid}: ${cmdline.replaceAll("\0", " ")}`);
  }
  return found;
}

/**
 * One crash step end to end against a server whose process under test was started with
 * `WRENN_CRASH_AT=step`: makes what the operation needs, runs it (the process dies at the step),
 * and returns the id of the sandbox it was run on (undefined when the create itself crashed).
 */
export async function runIntoCrash(
  api: Api,
  { kind }: CrashStep,
  template: string,
  died: Promise<unknown>,
): Promise<string | undefined> {
  const body = { template, memory_mb: 128, disk_size_mb: 64 };
  if (kind === "create") {
    await api("POST", "/v1/sandboxes", { ...body, timeout_sec: CRASHED_CREATE_TIMEOUT_SEC }).catch(
      () => {},
    );
    await died;
    return undefined;
  }
  const made = await api<Row>("POST", "/v1/sandboxes", body);
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  const id = made.body.id;
  if (kind === "resume") expect((await api("POST", `/v1/sandboxes/${id}/pause`)).status).toBe(200);
  const action: Record<Exclude<StepKind, "create">, () => Promise<unknown>> = {
    pause: () => api("POST", `/v1/sandboxes/${id}/pause`),
    resume: () => api("POST", `/v1/sandboxes/${id}/resume`, {}),
    snapshot: () => api("POST", "/v1/snapshots", { sandbox_id: id, name: `snap-${id}` }),
    destroy: () => api("DELETE", `/v1/sandboxes/${id}`),
  };
  await action[kind]().catch(() => {});
  await died;
  return id;
}

/**
 * After a restart: every sandbox row is running (and runs a command), paused or stopped, with
 * nothing of the stopped ones left on the host; creates that crashed carry their request's
 * timeout (`crashedCreate`: rows not in `seen` yet); every sandbox dir under the agent belongs to a live row; every snapshot the agent
 * holds has a row. `seen` collects every id met so far (checked again each time).
 */
export async function expectConsistent(
  api: Api,
  agentDir: string,
  seen: Set<string>,
  crashedCreate: boolean,
  boundMs: number,
): Promise<{ live: string[] }> {
  const all = async () =>
    (
      await api<{ sandboxes: Row[] }>(
        "GET",
        "/v1/sandboxes?state=pending,running,paused,missing,error,stopped&limit=1000",
      )
    ).body.sandboxes;
  // The database agrees with the host within the bound (one reconcile tick, and the time for
  // the agent to be seen again).
  const rows = await until(
    "every sandbox running, paused or stopped",
    async () => {
      const list = await all();
      return list.every((r) => ["running", "paused", "stopped"].includes(r.state)) && list;
    },
    boundMs,
    100,
  ).catch(async (err) => {
    throw new Error(`${(err as Error).message}: ${JSON.stringify(await all())}`);
  });
  for (const row of rows) {
    // A row not seen before was made by the create that crashed.
    if (crashedCreate && !seen.has(row.id)) {
      expect(row.timeout_sec, `${row.id} (${row.state})`).toBe(CRASHED_CREATE_TIMEOUT_SEC);
    }
    seen.add(row.id);
  }
  for (const row of rows) {
    if (row.state === "running") {
      const run = await api<{ exit_code: number }>("POST", `/v1/sandboxes/${row.id}/exec`, {
        cmd: "true",
      });
      expect(run.status, `exec in ${row.id}: ${JSON.stringify(run.body)}`).toBe(200);
      expect(run.body.exit_code).toBe(0);
    }
  }
  const live = new Set(rows.filter((r) => r.state !== "stopped").map((r) => r.id));
  const dirs = await readdir(join(agentDir, "sandboxes")).catch(() => [] as string[]);
  for (const dir of dirs) seen.add(dir);
  // Snapshots and orphans are removed by the reconciler after their (short, in tests) grace.
  await until(
    "nothing left of stopped sandboxes and no snapshot without a row",
    async () => {
      for (const id of seen) {
        if (live.has(id)) continue;
        const left = await sandboxLeftovers(agentDir, id);
        if (left.length > 0) throw new Error(`${id}: ${left.join(", ")}`);
      }
      const snapshots = (await api<{ snapshots: { id: string }[] }>("GET", "/v1/snapshots")).body
        .snapshots;
      const rowIds = new Set(snapshots.map((s) => s.id));
      const onHost = (await readdir(join(agentDir, "templates")).catch(() => [] as string[]))
        .filter((name) => /^[a-z][a-z0-9]{19}$/.test(name))
        .filter((name) => !rowIds.has(name));
      if (onHost.length > 0) throw new Error(`snapshots without a row: ${onHost.join(", ")}`);
      return true;
    },
    boundMs + 15_000,
    250,
  );
  return { live: [...live] };
}
