import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import {
  defaultEnvdDir,
  keepHostFirewallState,
  NamespaceRuntime,
  silentLogger,
} from "@wrenn/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leaksUnder } from "./helpers/host-state.js";

// The real `wrenn-server` binary as a child, stopped the way a user stops it: Ctrl-C under
// `npm start` delivers SIGINT twice (terminal to the process group, then scripts/start.mjs
// forwarding it). Needs root, bubblewrap, iproute2, nftables/iptables, e2fsprogs, util-linux.

const serverBin = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "main.js");
/** Generous: close() gives requests 5 s, then stops the agent. A hang is what this catches. */
const EXIT_BOUND_MS = 30_000;

interface Running {
  child: ChildProcess;
  url: string;
  /** Every log line's `msg`, in order. */
  messages: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

describe("wrenn-server stopped with SIGINT", { timeout: 180_000 }, () => {
  let dataDir: string;
  let restoreHost: () => Promise<void> = async () => {};
  const children: ChildProcess[] = [];

  /** Starts wrenn-server on `dataDir` and resolves once /health answers 200. */
  async function start(): Promise<Running> {
    // SQLite and the default warm pool (auto), whatever the caller's environment says.
    const { WRENN_DATABASE_URL: _db, WRENN_WARM_POOL: _pool, ...env } = process.env;
    const child = spawn(process.execPath, [serverBin, "serve"], {
      env: {
        ...env,
        WRENN_DATA_DIR: dataDir,
        WRENN_PORT: "0",
        WRENN_DEFAULT_TEMPLATE: "test-minimal",
        WRENN_LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    const exited = once(child, "exit").then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    const messages: string[] = [];
    const listening = new Promise<string>((resolve, reject) => {
      exited.then(({ code, signal }) =>
        reject(new Error(`wrenn-server exited (${signal ?? code}) before listening`)),
      );
      createInterface({ input: child.stdout! }).on("line", (line) => {
        let entry: { msg?: string; url?: string } = {};
        try {
          entry = JSON.parse(line);
        } catch {
          return; // the first run's banner
        }
        messages.push(entry.msg ?? "");
        if (entry.msg === "wrenn server listening" && entry.url) resolve(entry.url);
      });
    });
    const url = await listening;
    while ((await fetch(`${url}/health`).then((r) => r.status)) !== 200) await sleep(100);
    return { child, url, messages, exited };
  }

  /** Ctrl-C under `npm start`: SIGINT, and SIGINT again once the server is shutting down. */
  async function interrupt(server: Running, times: number) {
    const started = performance.now();
    server.child.kill("SIGINT");
    if (times > 1) {
      const alive = () => server.child.exitCode === null && server.child.signalCode === null;
      while (alive() && !server.messages.includes("shutting down")) await sleep(10);
      if (alive()) server.child.kill("SIGINT");
    }
    const bound = sleep(EXIT_BOUND_MS, "still running" as const, { ref: false });
    const result = await Promise.race([server.exited, bound]);
    console.log(`SIGINT ×${times}: exited after ${(performance.now() - started).toFixed(0)} ms`);
    return result;
  }

  async function api(url: string, method: string, path: string, body?: unknown) {
    const { api_key: key } = JSON.parse(await readFile(join(dataDir, "config.json"), "utf8"));
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { "x-api-key": key, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  }

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    dataDir = await mkdtemp(join(tmpdir(), "wrenn-shutdown-"));
  });

  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await once(child, "exit");
      }
    }
    // A failed case may leave its sandbox running: adopt it with the agent's runtime and destroy it.
    const leaks = await leaksUnder(dataDir);
    if (leaks.length > 0) {
      const runtime = new NamespaceRuntime({
        agentDir: join(dataDir, "agent"),
        envdDir: defaultEnvdDir(),
        logger: silentLogger(),
      });
      await runtime.adopt();
      for (const sandbox of runtime.list()) await runtime.destroy(sandbox.id);
      await runtime.close();
    }
    const left = await leaksUnder(dataDir);
    await rm(dataDir, { recursive: true, force: true });
    await restoreHost();
    expect(left).toEqual([]);
  });

  it("exits promptly, leaves no ready disk mounted, and the sandbox is adopted on the next start", async () => {
    const first = await start();
    const created = await api(first.url, "POST", "/v1/sandboxes", {});
    expect(created.status).toBe(201);
    const id = created.json.id as string;
    // Taking a disk started the pool's refill: stop once a ready disk is mounted (or on the way).
    const pool = join(dataDir, "agent", "disk-pool");
    while ((await readdir(pool).catch(() => [])).length === 0) await sleep(20);

    // A request still running at the signal gets close()'s grace period, then is cut.
    const pending = api(first.url, "POST", `/v1/sandboxes/${id}/exec`, {
      cmd: "touch /tmp/started; exec sleep 600",
    });
    pending.catch(() => {});
    const stat = `/v1/sandboxes/${id}/files/stat?path=/tmp/started`;
    while ((await api(first.url, "GET", stat)).status !== 200) await sleep(20);

    expect(await interrupt(first, 2)).toEqual({ code: 0, signal: null });
    await expect(pending).rejects.toThrow();
    const leaks = await leaksUnder(dataDir);
    // Only the running sandbox's disk remains: sandboxes survive a restart by design.
    expect(leaks.filter((line) => !line.includes(join(dataDir, "agent", "sandboxes")))).toEqual([]);
    expect(leaks.length).toBeGreaterThan(0);

    const second = await start();
    const adopted = await api(second.url, "GET", `/v1/sandboxes/${id}`);
    expect(adopted).toMatchObject({ status: 200, json: { id, state: "running" } });
    const ran = await api(second.url, "POST", `/v1/sandboxes/${id}/exec`, {
      cmd: "echo still here",
    });
    expect(ran).toMatchObject({ status: 200, json: { stdout: "still here\n" } });
    expect((await api(second.url, "DELETE", `/v1/sandboxes/${id}`)).status).toBe(204);

    expect(await interrupt(second, 1)).toEqual({ code: 0, signal: null });
    expect(await leaksUnder(dataDir)).toEqual([]);
  });
});
