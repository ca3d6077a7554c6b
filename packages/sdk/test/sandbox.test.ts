import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { NamespaceRuntime } from "@wrenn/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ApiClient,
  AuthenticationError,
  ConflictError,
  ConnectionError,
  InvalidArgumentError,
  loadConfig,
  NotFoundError,
  Sandbox,
  Snapshot,
  TimeoutError,
} from "../src/index.js";
import { ResettingProxy } from "./helpers/reset-proxy.js";
import { namespaceRuntime, SMALL, startTestServer, type TestServer } from "./helpers/server.js";

// Sandbox lifecycle, listing, snapshots, config, retries and typed errors against a real
// single-host server with real test-minimal sandboxes.

const run = promisify(execFile);

let server: TestServer;
let conn: { apiUrl: string; apiKey: string };
let sandbox: Sandbox;

beforeAll(async () => {
  server = await startTestServer();
  conn = { apiUrl: server.url, apiKey: server.apiKey };
  sandbox = await Sandbox.create({ ...conn, ...SMALL, metadata: { suite: "sandbox" } });
});

afterAll(async () => {
  await server?.close();
});

describe("Sandbox", () => {
  it("creates a running sandbox and describes it", async () => {
    const info = await sandbox.getInfo();
    expect(info).toMatchObject({
      sandboxId: sandbox.sandboxId,
      template: SMALL.template,
      state: "running",
      memoryMb: 256,
      diskSizeMb: 128,
      metadata: { suite: "sandbox" },
    });
    expect(info.createdAt).toBeInstanceOf(Date);
    expect(await sandbox.isRunning()).toBe(true);
    expect((await Sandbox.getInfo(sandbox.sandboxId, conn)).state).toBe("running");
  });

  it("keeps its ports private when asked (a traffic token, also after connect and fork) and records auto-resume", async () => {
    const closed = await Sandbox.create({
      ...conn,
      ...SMALL,
      allowPublicTraffic: false,
      autoResume: true,
    });
    expect(closed.trafficAccessToken).toMatch(/^[0-9a-f]{64}$/);
    expect(await closed.getInfo()).toMatchObject({ allowPublicTraffic: false, autoResume: true });
    // Connected to or forked, it still has (its own) token for its ports.
    const again = await Sandbox.connect(closed.sandboxId, conn);
    expect(again.trafficAccessToken).toBe(closed.trafficAccessToken);
    const [fork] = await closed.fork(1);
    expect(fork?.trafficAccessToken).toMatch(/^[0-9a-f]{64}$/);
    expect(fork?.trafficAccessToken).not.toBe(closed.trafficAccessToken);
    await fork?.kill();
    expect(sandbox.trafficAccessToken).toBeUndefined();
    expect((await Sandbox.connect(sandbox.sandboxId, conn)).trafficAccessToken).toBeUndefined();
    expect(await sandbox.getInfo()).toMatchObject({ allowPublicTraffic: true, autoResume: false });
    await closed.kill();
  });

  it("sets the inactivity timeout and pings", async () => {
    await sandbox.setTimeout(90_500);
    expect((await sandbox.getInfo()).timeoutMs).toBe(91_000);
    const before = (await sandbox.getInfo()).lastActiveAt;
    await sandbox.ping();
    expect((await sandbox.getInfo()).lastActiveAt.getTime()).toBeGreaterThanOrEqual(
      before.getTime(),
    );
  });

  it("reports metrics", async () => {
    const metrics = await sandbox.getMetrics();
    expect(metrics.timestamp).toBeInstanceOf(Date);
    expect(metrics.memTotalMb).toBeGreaterThan(0);
    expect(typeof metrics.diskUsedMb).toBe("number");
  });

  it("pauses, resumes, and connect() resumes a paused sandbox", async () => {
    await sandbox.pause();
    expect(await sandbox.isRunning()).toBe(false);
    await sandbox.resume();
    expect(await sandbox.isRunning()).toBe(true);
    await sandbox.pause();
    const again = await Sandbox.connect(sandbox.sandboxId, conn);
    expect(again.sandboxId).toBe(sandbox.sandboxId);
    expect(await again.isRunning()).toBe(true);
  });

  it("lists across pages, filtered by state and metadata", async () => {
    const second = await Sandbox.create({ ...conn, ...SMALL, metadata: { suite: "list" } });
    try {
      const paginator = Sandbox.list({ ...conn, limit: 1 });
      const firstPage = await paginator.nextItems();
      expect(firstPage).toHaveLength(1);
      expect(paginator.hasNext).toBe(true);
      const all: string[] = [];
      for await (const info of Sandbox.list({ ...conn, limit: 1, state: "running" })) {
        all.push(info.sandboxId);
      }
      expect(all).toEqual(expect.arrayContaining([sandbox.sandboxId, second.sandboxId]));
      const pages = [];
      for await (const page of Sandbox.list({ ...conn, limit: 1 }).pages()) pages.push(page);
      expect(pages.length).toBeGreaterThanOrEqual(2);
      const labelled = await Sandbox.list({ ...conn, metadata: { suite: "list" } }).toArray();
      expect(labelled.map((s) => s.sandboxId)).toEqual([second.sandboxId]);
      const paused = await Sandbox.list({ ...conn, state: ["paused"] }).toArray();
      expect(paused.map((s) => s.sandboxId)).not.toContain(second.sandboxId);
    } finally {
      await second.kill();
    }
    expect(await Sandbox.kill(second.sandboxId, conn)).toBe(false);
  });

  it("snapshots a sandbox, starts another from it, and deletes it", async () => {
    await sandbox.files.write("/home/user/marker.txt", "from the snapshot");
    const name = `snap-${randomBytes(3).toString("hex")}`;
    const snap = await sandbox.createSnapshot(name);
    expect(snap).toMatchObject({ name, baseTemplate: SMALL.template });
    expect((await Snapshot.list(conn).toArray()).map((s) => s.name)).toContain(name);
    await expect(sandbox.createSnapshot(name)).rejects.toBeInstanceOf(ConflictError);

    const child = await Sandbox.create({ ...conn, snapshot: name });
    try {
      expect(await child.files.read("/home/user/marker.txt")).toBe("from the snapshot");
    } finally {
      await child.kill();
    }
    expect(await Snapshot.delete(name, conn)).toBe(true);
    expect(await Snapshot.delete(name, conn)).toBe(false);
  });

  it("kill() destroys; the static kill() says whether it existed", async () => {
    const doomed = await Sandbox.create({ ...conn, ...SMALL });
    expect(await Sandbox.kill(doomed.sandboxId, conn)).toBe(true);
    expect(await Sandbox.kill(doomed.sandboxId, conn)).toBe(false);
    await expect(doomed.getInfo()).resolves.toMatchObject({ state: "stopped" });
  });
});

describe("errors", () => {
  it("maps each failure to its class with code, status and request id", async () => {
    const missing = await Sandbox.getInfo("nosuchsandbox", conn).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing).toMatchObject({ code: "not_found", status: 404 });
    expect((missing as NotFoundError).requestId).toBeTruthy();

    await expect(
      Sandbox.getInfo(sandbox.sandboxId, { ...conn, apiKey: "wrn_wrong" }),
    ).rejects.toBeInstanceOf(AuthenticationError);
    await expect(Sandbox.create({ ...conn, template: "no such template!" })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(
      Sandbox.getInfo(sandbox.sandboxId, { apiKey: "k", apiUrl: "http://127.0.0.1:1" }),
    ).rejects.toBeInstanceOf(ConnectionError);
  });

  it("fails with TimeoutError when timeoutMs runs out, and with the reason on abort", async () => {
    const err = await Sandbox.create({ ...conn, ...SMALL, requestTimeoutMs: 1 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TimeoutError);
    const controller = new AbortController();
    const pending = sandbox.getInfo({ signal: controller.signal });
    controller.abort(new Error("stop"));
    await expect(pending).rejects.toThrow("stop");
  });

  it("takes a timeoutMs too long for a timer (Infinity) as no limit", async () => {
    // Node fires a timer longer than 2^31-1 ms at once: these must not fail as timed out, nor
    // reach the server as a limit it refuses (JSON has no Infinity).
    for (const timeoutMs of [Infinity, 2 ** 31, Number.MAX_SAFE_INTEGER]) {
      expect((await sandbox.getInfo({ timeoutMs })).state).toBe("running");
      const { stdout } = await sandbox.commands.run("echo hi", { timeoutMs, onStdout: () => {} });
      expect(stdout).toBe("hi\n");
      expect((await sandbox.commands.run("echo hi", { timeoutMs })).stdout).toBe("hi\n");
      const term = await sandbox.pty.create({
        cols: 80,
        rows: 24,
        onData: () => {},
        timeoutMs,
        cmd: "true",
      });
      expect((await term.wait()).exitCode).toBe(0);
    }
  });

  it("leaves no sandbox behind when a create or fork is aborted or times out mid-call", async () => {
    // Each call is given up on once the host has made its sandbox, past the host's own last look
    // at the request (seen at the server's own runtime, which goes on as it would; the answer
    // waits until the server has seen the request closed): the server must destroy what was made.
    const runtime = namespaceRuntime(server);
    const realCreate = runtime.create;
    const reached: string[] = [];
    const making: Promise<unknown>[] = [];
    let onceMade: () => unknown = () => {};
    runtime.create = function (this: NamespaceRuntime, ...args) {
      reached.push(args[0].id);
      const made = realCreate.apply(this, args).then(async (info) => {
        await onceMade();
        return info;
      });
      making.push(made.catch(() => {}));
      return made;
    };
    const labels = { metadata: { suite: "left-behind" } };
    try {
      let controller = new AbortController();
      onceMade = () => {
        controller.abort();
        return sleep(300);
      };
      const created = Sandbox.create({ ...conn, ...SMALL, ...labels, signal: controller.signal });
      await expect(created).rejects.toMatchObject({ name: "AbortError" });
      controller = new AbortController();
      const source = await Sandbox.connect(sandbox.sandboxId, conn);
      await expect(source.fork(1, { signal: controller.signal })).rejects.toMatchObject({
        name: "AbortError",
      });
      onceMade = () => sleep(1_500);
      const timedOut = Sandbox.create({ ...conn, ...SMALL, ...labels, requestTimeoutMs: 500 });
      await expect(timedOut).rejects.toBeInstanceOf(TimeoutError);
    } finally {
      runtime.create = realCreate;
    }
    // The server reached the host with each call, and each sandbox was made (or failed) before
    // anything is looked for: nothing here passes for want of trying.
    expect(reached).toHaveLength(3);
    await Promise.all(making);
    const leftBehind = async () => [
      ...runtime.list().filter((s) => reached.includes(s.id)),
      ...(await Sandbox.list({ ...conn, ...labels }).toArray()),
      ...(await Sandbox.list({ ...conn, metadata: { forked_from: sandbox.sandboxId } }).toArray()),
    ];
    await expect.poll(leftBehind, { timeout: 10_000, interval: 250 }).toEqual([]);
  });
});

describe("retries", () => {
  it("retries idempotent calls over connections the proxy resets", async () => {
    const proxy = await ResettingProxy.start(server.url, 2);
    try {
      const client = new ApiClient({ apiUrl: proxy.url, apiKey: server.apiKey });
      const info = await client.json<{ id: string }>({
        method: "GET",
        path: `/v1/sandboxes/${sandbox.sandboxId}`,
      });
      expect(info.id).toBe(sandbox.sandboxId);
      expect(proxy.connections).toBe(3);
    } finally {
      await proxy.close();
    }
  });

  it("never retries a non-idempotent call", async () => {
    const proxy = await ResettingProxy.start(server.url, 1);
    try {
      const err = await Sandbox.create({
        apiUrl: proxy.url,
        apiKey: server.apiKey,
        ...SMALL,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectionError);
      expect(proxy.connections).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it("gives up after maxRetries with a ConnectionError", async () => {
    const proxy = await ResettingProxy.start(server.url, 100);
    try {
      const client = new ApiClient({
        apiUrl: proxy.url,
        apiKey: server.apiKey,
        retry: { maxRetries: 2, baseDelayMs: 1 },
      });
      await expect(
        client.json({ method: "GET", path: `/v1/sandboxes/${sandbox.sandboxId}` }),
      ).rejects.toBeInstanceOf(ConnectionError);
      expect(proxy.connections).toBe(3);
    } finally {
      await proxy.close();
    }
  });
});

describe("config", () => {
  it("resolves options, then WRENN_* variables, then the server's config file", async () => {
    const fromFile = await loadConfig({ env: { WRENN_DATA_DIR: server.dataDir } });
    expect(fromFile).toMatchObject({
      apiUrl: server.url,
      apiKey: server.apiKey,
      sources: { apiUrl: "file", apiKey: "file" },
      configPath: join(server.dataDir, "config.json"),
    });
    const fromEnv = await loadConfig({
      env: { WRENN_DATA_DIR: server.dataDir, WRENN_API_KEY: "wrn_env" },
    });
    expect(fromEnv.sources).toEqual({ apiUrl: "file", apiKey: "env" });
    expect(fromEnv.apiKey).toBe("wrn_env");
    const fromOptions = await loadConfig({
      apiUrl: "http://x:1/",
      env: {},
      configPath: "/nonexistent",
    });
    expect(fromOptions).toMatchObject({ apiUrl: "http://x:1", apiKey: undefined });

    const dir = await mkdtemp(join(tmpdir(), "wrenn-sdk-config-"));
    try {
      const path = join(dir, "other.json");
      await writeFile(path, JSON.stringify({ api_url: server.url, api_key: server.apiKey }));
      const previous = process.env.WRENN_CONFIG;
      process.env.WRENN_CONFIG = path;
      try {
        // No apiKey/apiUrl given: the SDK finds the server through WRENN_CONFIG.
        expect((await Sandbox.getInfo(sandbox.sandboxId)).sandboxId).toBe(sandbox.sandboxId);
      } finally {
        if (previous === undefined) delete process.env.WRENN_CONFIG;
        else process.env.WRENN_CONFIG = previous;
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("fails with AuthenticationError when there is no key anywhere", async () => {
    const saved = { key: process.env.WRENN_API_KEY, config: process.env.WRENN_CONFIG };
    delete process.env.WRENN_API_KEY;
    process.env.WRENN_CONFIG = join(server.dataDir, "missing.json");
    try {
      const err = await Sandbox.list({ apiUrl: server.url })
        .nextItems()
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuthenticationError);
      expect(err).toMatchObject({ code: "missing_api_key" });
    } finally {
      if (saved.key !== undefined) process.env.WRENN_API_KEY = saved.key;
      if (saved.config === undefined) delete process.env.WRENN_CONFIG;
      else process.env.WRENN_CONFIG = saved.config;
    }
  });
});

describe("packaging", () => {
  it("works the same from the CommonJS build", async () => {
    const cjs = createRequire(import.meta.url)(
      "../dist/cjs/index.js",
    ) as typeof import("../src/index.js");
    const info = await cjs.Sandbox.getInfo(sandbox.sandboxId, conn);
    expect(info.sandboxId).toBe(sandbox.sandboxId);
    await expect(cjs.Sandbox.getInfo("nosuchsandbox", conn)).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("README", () => {
  it("runs the quickstart as written", async () => {
    const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
    const code = /## Quickstart\s+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(code).toBeTruthy();
    // Beside the package, so `@wrenn/sdk` resolves to this workspace's build.
    const file = fileURLToPath(
      new URL(`./.quickstart-${randomBytes(4).toString("hex")}.ts`, import.meta.url),
    );
    await writeFile(file, code ?? "");
    try {
      const { stdout } = await run(process.execPath, ["--import", "tsx", file], {
        env: { ...process.env, WRENN_API_URL: server.url, WRENN_API_KEY: server.apiKey },
        timeout: 60_000,
      });
      expect(stdout).toMatch(/^hello from \S+\n\nsome data\n$/);
    } finally {
      await rm(file, { force: true });
    }
  });
});
