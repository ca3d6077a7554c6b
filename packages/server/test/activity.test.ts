import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  defaultEnvdDir,
  keepHostFirewallState,
  NamespaceRuntime,
  silentLogger,
} from "@wrenn/agent";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/index.js";
import { ACTIVITY_GRANULARITY_MS } from "../src/service/sandboxes.js";
import { type SingleHost, startSingleHost } from "../src/single-host/index.js";
import { type TestDatabase, testEngines } from "./helpers/databases.js";
import { leaksUnder } from "./helpers/host-state.js";

// Exec and file traffic count as activity: `last_active_at` moves (at most once a second per
// sandbox) and the agent's idle timer is reset, so a sandbox in use is never auto-paused.
// Reads of the sandbox itself are not activity. Real server, agent and sandboxes on SQLite.
// Needs root, bubblewrap, iproute2, nftables/iptables, e2fsprogs, util-linux.

const TEMPLATE = "test-minimal";

interface Sandbox {
  id: string;
  state: string;
  last_active_at: string;
  updated_at: string;
}

describe("sandbox activity", { timeout: 60_000 }, () => {
  const sqlite = testEngines().find((e) => e.name === "sqlite");
  let dataDir: string;
  let agentDir: string;
  let database: TestDatabase | undefined;
  let host: SingleHost | undefined;
  let key: Record<string, string> = {};
  let restoreHost: () => Promise<void> = async () => {};

  const call = (method: string, path: string, init: RequestInit = {}) =>
    (host as SingleHost).app.request(path, {
      method,
      ...init,
      headers: { ...key, ...(init.headers as Record<string, string>) },
    });
  const json = async <T>(res: Response | Promise<Response>) => (await (await res).json()) as T;
  const sandbox = (id: string) => json<Sandbox>(call("GET", `/v1/sandboxes/${id}`));
  const exec = async (id: string, cmd = "true") => {
    const res = await call("POST", `/v1/sandboxes/${id}/exec`, {
      body: JSON.stringify({ cmd }),
      headers: { "content-type": "application/json" },
    });
    expect(res.status, await res.clone().text()).toBe(200);
  };
  const create = async (extra: Record<string, unknown> = {}) => {
    const res = await call("POST", "/v1/sandboxes", {
      body: JSON.stringify({ template: TEMPLATE, memory_mb: 256, disk_size_mb: 128, ...extra }),
      headers: { "content-type": "application/json" },
    });
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as Sandbox;
  };
  /** Long enough that the next activity is past the recording granularity. */
  const pastGranularity = () => sleep(ACTIVITY_GRANULARITY_MS + 50);

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    dataDir = await mkdtemp(join(tmpdir(), "wrenn-activity-"));
    agentDir = await mkdtemp(join(tmpdir(), "wrenn-activity-agent-"));
    database = await sqlite?.create();
    host = await startSingleHost(
      loadConfig({ WRENN_DATA_DIR: dataDir, WRENN_DEFAULT_TEMPLATE: TEMPLATE }),
      pino({ level: "silent" }),
      {
        db: database?.handle,
        agentDir,
        runtime: new NamespaceRuntime({
          agentDir,
          envdDir: defaultEnvdDir(),
          logger: silentLogger(),
        }),
        warmPool: [],
        reconcileIntervalMs: 500,
        listen: false,
      },
    );
    await host.ready;
    const { services } = host;
    const email = `u${randomBytes(4).toString("hex")}@example.com`;
    await services.accounts.signup(email, "correct horse battery");
    const { token } = await services.accounts.login(email, "correct horse battery");
    const user = await services.accounts.authenticateToken(token);
    key = { "x-api-key": (await services.apiKeys.create(user, "activity")).key };
  }, 120_000);

  afterAll(async () => {
    if (host) {
      const runtime = host.embedded.agent.runtime;
      for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
      await host.close();
    }
    await database?.cleanup();
    const leaks = agentDir ? await leaksUnder(agentDir) : [];
    await rm(dataDir, { recursive: true, force: true });
    if (leaks.length === 0) await rm(agentDir, { recursive: true, force: true });
    await restoreHost();
    expect(leaks).toEqual([]);
  }, 120_000);

  it("moves last_active_at on exec and file traffic, not on reads, and leaves updated_at", async () => {
    const { id } = await create();
    const created = await sandbox(id);
    await pastGranularity();
    await sandbox(id);
    await call("GET", "/v1/sandboxes");
    expect((await sandbox(id)).last_active_at).toBe(created.last_active_at);

    await exec(id);
    const afterExec = await sandbox(id);
    expect(afterExec.last_active_at > created.last_active_at).toBe(true);
    expect(afterExec.updated_at).toBe(created.updated_at);

    await pastGranularity();
    const put = await call("PUT", `/v1/sandboxes/${id}/files?path=/tmp/a.txt`, {
      body: "hello",
      headers: { "content-type": "application/octet-stream" },
    });
    expect(put.status, await put.clone().text()).toBe(200);
    const afterUpload = await sandbox(id);
    expect(afterUpload.last_active_at > afterExec.last_active_at).toBe(true);

    await pastGranularity();
    const down = await call("GET", `/v1/sandboxes/${id}/files?path=/tmp/a.txt`);
    expect(await down.text()).toBe("hello");
    expect((await sandbox(id)).last_active_at > afterUpload.last_active_at).toBe(true);
  });

  it("records activity at most once per granularity period", async () => {
    const { id } = await create();
    await pastGranularity();
    const started = Date.now();
    await exec(id);
    const first = (await sandbox(id)).last_active_at;
    await Promise.all([exec(id), exec(id), exec(id)]);
    await exec(id);
    const second = (await sandbox(id)).last_active_at;
    // Only meaningful while the burst fit in one period; a starved machine can stretch it.
    if (Date.now() - started < ACTIVITY_GRANULARITY_MS) expect(second).toBe(first);
    else expect(second >= first).toBe(true);
  });

  it("keeps a sandbox in use running past its timeout, and pauses it once left alone", async () => {
    const { id } = await create({ timeout_sec: 2 });
    const until = Date.now() + 5_000;
    while (Date.now() < until) {
      await exec(id);
      await sleep(400);
    }
    expect((await sandbox(id)).state).toBe("running");
    const deadline = Date.now() + 20_000;
    while ((await sandbox(id)).state !== "paused") {
      if (Date.now() > deadline) throw new Error(`${id} was never auto-paused`);
      await sleep(250);
    }
  });
});
