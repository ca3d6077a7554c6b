import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { HostAgentService } from "@wrenn/proto/agent";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentConfig } from "../src/config/index.js";
import { defaultEnvdDir } from "../src/config/index.js";
import {
  CREDENTIALS_FILE,
  checkServerUrl,
  type HostCredentials,
  readCredentials,
  writeCredentials,
} from "../src/fleet/index.js";
import { silentLogger } from "../src/logger/index.js";
import { AddressPool, keepHostFirewallState } from "../src/network/index.js";
import { type Agent, createAgent } from "../src/rpc/index.js";
import { NamespaceRuntime } from "../src/runtime/index.js";
import { EnvdClient } from "./contract/envd-client.js";
import { findLeaks } from "./contract/leaks.js";
import { FakeControlPlane } from "./fixtures/fake-control-plane.js";
import { until } from "./fixtures/until.js";

// The agent as a member of a fleet: credentials, registration, heartbeats, refresh (and a crash
// in the middle of one), the grace pause, and envd's per-sandbox token — against a FAKE control
// plane on loopback (the agent is the subject here). Needs root.
const cidr = `10.231.${Math.floor(Math.random() * 250)}.0/24`;
const TEMPLATE = "test-minimal";
const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));

/** Log lines an agent wrote, parsed. */
function logCapture() {
  const lines: { msg: string; [k: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: pino({ level: "info" }, stream) };
}

describe("credentials file", () => {
  it("is written 0600 and atomically: a reader never sees half of one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "wrenn-creds-"));
    try {
      const creds = (n: number): HostCredentials => ({
        server_url: "http://127.0.0.1:1",
        host_id: "h",
        agent_key: "k".repeat(64),
        host_jwt: `jwt-${n}-${"x".repeat(4000)}`,
        host_jwt_expires_at: "2030-01-01T00:00:00Z",
        refresh_token: `rt-${n}`,
        refresh_token_expires_at: "2030-01-01T00:00:00Z",
      });
      await writeCredentials(dir, creds(0));
      let writing = true;
      const writer = (async () => {
        for (let n = 1; n <= 200; n++) await writeCredentials(dir, creds(n));
        writing = false;
      })();
      let reads = 0;
      while (writing) {
        const read = await readCredentials(dir);
        expect(read?.refresh_token).toMatch(/^rt-\d+$/);
        reads++;
      }
      await writer;
      expect(reads).toBeGreaterThan(0);
      expect((await stat(join(dir, CREDENTIALS_FILE))).mode & 0o777).toBe(0o600);
      expect((await readCredentials(dir))?.refresh_token).toBe("rt-200");
      // No temp file left behind.
      expect(await readdir(dir)).toEqual([CREDENTIALS_FILE]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("plain http only to loopback or private addresses", async () => {
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    await expect(checkServerUrl("http://8.8.8.8:3000", warn)).rejects.toThrow(/public address/);
    await expect(checkServerUrl("ftp://10.0.0.1", warn)).rejects.toThrow(/http\(s\)/);
    await expect(checkServerUrl("nonsense", warn)).rejects.toThrow(/not a URL/);
    expect(warnings).toEqual([]);
    for (const ok of ["http://127.0.0.1:3000", "http://10.1.2.3", "http://[fd00::1]:80"]) {
      await checkServerUrl(ok, warn);
    }
    expect(warnings).toHaveLength(3);
    await checkServerUrl("https://8.8.8.8", warn);
    expect(warnings).toHaveLength(3);
  });
});

describe("fleet member against a FAKE control plane", { timeout: 90_000 }, () => {
  const cp = new FakeControlPlane();
  let dir: string;
  let agent: Agent | undefined;
  let restoreHost: () => Promise<void> = async () => {};
  const ids = new Set<string>();
  let logs: { msg: string; [k: string]: unknown }[] = [];

  const makeAgent = (config: Partial<AgentConfig> = {}, logger = silentLogger()) =>
    createAgent({
      config: {
        agentDir: dir,
        serverUrl: cp.url,
        heartbeatSec: 0.2,
        cpGraceSec: 300,
        warmPool: [],
        ...config,
      },
      logger,
      runtime: new NamespaceRuntime({
        agentDir: dir,
        envdDir: defaultEnvdDir(),
        logger,
        addressPool: new AddressPool(cidr),
      }),
    });
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
  const agentClient = (url: string, key: string) =>
    createClient(
      HostAgentService,
      createConnectTransport({
        baseUrl: url,
        httpVersion: "1.1",
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${key}`);
            return next(req);
          },
        ],
      }),
    );

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
    dir = await mkdtemp(join(tmpdir(), "wrenn-fleet-"));
    await cp.start();
  });

  afterAll(async () => {
    if (agent) {
      for (const s of agent.runtime.list()) await agent.runtime.destroy(s.id).catch(() => {});
      await agent.close();
    }
    await cp.close();
    const leaks = await findLeaks(dir, ids);
    if (leaks.length === 0) await rm(dir, { recursive: true, force: true });
    await restoreHost();
    expect(leaks).toEqual([]);
  }, 120_000);

  it("refuses to start without credentials or a token, and reports refused registrations", async () => {
    const bare = makeAgent();
    await expect(bare.start()).rejects.toThrow(/no host credentials .* --registration-token/);
    await bare.close();

    const used = makeAgent({ registrationToken: "never-issued" });
    await used.start();
    await expect(used.listen(0, "127.0.0.1")).rejects.toThrow(
      /registration token rejected .*wrenn host add/,
    );
    await used.close();

    const unreachable = makeAgent({
      registrationToken: cp.newToken(),
      advertiseUrl: "http://127.0.0.1:1",
    });
    await unreachable.start();
    await expect(unreachable.listen(0, "127.0.0.1")).rejects.toThrow(
      /registration refused: .*127\.0\.0\.1:1/,
    );
    await unreachable.close();
    expect(await readCredentials(dir)).toBeUndefined();
    expect(cp.registrations).toEqual([]);
  });

  it("registers once with its key, heartbeats, and reuses its credentials on the next start", async () => {
    agent = makeAgent({ registrationToken: cp.newToken() });
    await agent.start();
    const listener = await agent.listen(0, "127.0.0.1");
    expect(cp.registrations).toHaveLength(1);
    const reg = cp.registrations[0] as Record<string, unknown>;
    expect(reg.agent_key).toMatch(/^[0-9a-f]{64}$/);
    expect(reg).toMatchObject({
      advertise_url: listener.url,
      sandbox_cidr: cidr,
      runtimes: ["namespace"],
      default_runtime: "namespace",
    });
    const creds = await readCredentials(dir);
    expect(creds).toMatchObject({
      server_url: cp.url,
      host_id: reg.host_id,
      agent_key: reg.agent_key,
      host_jwt: cp.pairs[0]?.jwt,
      refresh_token: cp.pairs[0]?.refresh,
    });
    expect((await stat(join(dir, CREDENTIALS_FILE))).mode & 0o777).toBe(0o600);

    // Only the agent key opens the agent: RPC and the envd proxy alike.
    const key = String(reg.agent_key);
    expect((await fetch(`${listener.url}/sandboxes/x1/envd/health`)).status).toBe(401);
    expect(
      (await fetch(`${listener.url}/sandboxes/x1/envd/health`, { headers: bearer("wrong") }))
        .status,
    ).toBe(401);
    expect((await agentClient(listener.url, key).getHostInfo({})).hostId).toBe(reg.host_id);

    const beat = await until("a heartbeat", () => cp.heartbeats.at(-1));
    expect(beat.jwt).toBe(cp.pairs[0]?.jwt);
    expect(beat.body).toMatchObject({
      host_id: reg.host_id,
      instance_id: reg.instance_id,
      advertise_url: listener.url,
      sandboxes: [],
    });
    expect(beat.body.usage).toMatchObject({ sandboxes_running: 0, sandboxes_paused: 0 });

    await agent.close();
    const firstInstance = reg.instance_id;
    const before = cp.heartbeats.length;
    agent = makeAgent();
    await agent.start();
    await agent.listen(0, "127.0.0.1");
    const next = await until("a heartbeat after restart", () => cp.heartbeats[before]);
    expect(cp.registrations).toHaveLength(1);
    expect(next.jwt).toBe(cp.pairs[0]?.jwt);
    expect(next.body.instance_id).not.toBe(firstInstance);
  });

  it("on 401 refreshes, saving the new pair before its first use", async () => {
    let fileAtFirstUse: HostCredentials | undefined;
    const oldPairs = cp.pairs.length;
    cp.onHeartbeat = (beat) => {
      const fresh = cp.pairs[oldPairs];
      if (fresh && beat.jwt === fresh.jwt && !fileAtFirstUse) {
        // Read synchronously-enough: the agent awaits this answer before anything else.
        void readCredentials(dir).then((c) => {
          fileAtFirstUse = c;
        });
      }
    };
    cp.rejectHeartbeats = 1;
    await until("a refresh", () => cp.refreshes.length > 0);
    await until("the new JWT in use", () => fileAtFirstUse);
    cp.onHeartbeat = undefined;
    expect(fileAtFirstUse?.refresh_token).toBe(cp.pairs.at(-1)?.refresh);
    expect(fileAtFirstUse?.host_jwt).toBe(cp.pairs.at(-1)?.jwt);
  });

  it("a crash between receiving a new pair and saving it does not lock the host out", async () => {
    await agent?.close();
    agent = undefined;
    const saved = await readCredentials(dir);
    cp.rejectHeartbeats = 1;
    const pairsBefore = cp.pairs.length;
    const child = spawn(process.execPath, ["--import", "tsx", main], {
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        ...process.env,
        WRENN_AGENT_DIR: dir,
        WRENN_AGENT_PORT: "0",
        WRENN_AGENT_HOST: "127.0.0.1",
        WRENN_SANDBOX_CIDR: cidr,
        WRENN_SERVER_URL: cp.url,
        WRENN_HEARTBEAT_SEC: "0.2",
        WRENN_WARM_POOL: "0",
        WRENN_LOG_LEVEL: "warn",
        WRENN_TEST_CRASH_AFTER_REFRESH: "1",
      },
    });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      child.once("exit", (c, s) => resolve([c, s])),
    );
    expect({ code, signal, stderr: stderr.slice(0, 300) }).toMatchObject({ signal: "SIGKILL" });
    // The server issued a pair the agent never saved.
    expect(cp.pairs.length).toBe(pairsBefore + 1);
    expect((await readCredentials(dir))?.refresh_token).toBe(saved?.refresh_token);

    agent = makeAgent();
    await agent.start();
    await agent.listen(0, "127.0.0.1");
    await until("heartbeats with a working pair", async () => {
      const current = cp.pairs.at(-1);
      return current?.used && (await readCredentials(dir))?.refresh_token === current.refresh;
    });
  });

  it("envd refuses callers without the sandbox's token; the proxy and adoption supply it", async () => {
    const key = (await readCredentials(dir))!.agent_key;
    const id = `fl${randomBytes(3).toString("hex")}-tok`;
    ids.add(id);
    const info = await agent!.runtime.create({
      id,
      template: TEMPLATE,
      vcpus: 1,
      memoryMb: 256,
      diskSizeMb: 64,
      envs: { WRENN_ENVD_ACCESS_TOKEN: "chosen-by-the-caller" },
    });
    expect(info.envdAccessToken).toMatch(/^[0-9a-f]{64}$/);
    const direct = `http://${info.envdAddress}`;
    // Any process on the host reaching envd's address: health only.
    expect((await fetch(`${direct}/health`)).status).toBe(204);
    const start = await fetch(`${direct}/process.Process/Start`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: Buffer.concat([
        Buffer.from([0, 0, 0, 0, 27]),
        Buffer.from(JSON.stringify({ process: { cmd: "true" } }).padEnd(27)),
      ]),
    });
    expect(start.status).toBe(401);
    const read = await fetch(`${direct}/files?path=/etc/hostname`);
    expect(read.status).toBe(401);
    expect(await read.json()).toMatchObject({ code: "unauthenticated" });
    const wrong = await fetch(`${direct}/files?path=/etc/hostname`, {
      headers: { "x-access-token": "chosen-by-the-caller" },
    });
    expect(wrong.status).toBe(401);
    // The token is on no command line of the host, nor in what envd's processes inherit.
    const proc = JSON.parse(
      await readFile(join(dir, "sandboxes", id, "sandbox.json"), "utf8"),
    ).process;
    expect(await readFile(`/proc/${proc.pid}/cmdline`, "utf8")).not.toContain(info.envdAccessToken);

    const url = `http://127.0.0.1:${new URL((await agent!.listen(0, "127.0.0.1")).url).port}`;
    const proxied = new EnvdClient(`${url}/sandboxes/${id}/envd`, undefined, {
      ...bearer(key),
      // A client's own token never reaches envd: the proxy sets the sandbox's.
      "x-access-token": "chosen-by-the-caller",
    });
    const env = await proxied.sh("env");
    expect(env.exitCode).toBe(0);
    expect(env.stdout).not.toContain(info.envdAccessToken);
    expect((await proxied.upload("/tmp/through-proxy", "ok")).status).toBeLessThan(300);
    expect(await (await proxied.download("/tmp/through-proxy")).text()).toBe("ok");

    // A restarted agent adopts the sandbox and still reaches its envd (token from the record).
    await agent!.close();
    agent = makeAgent();
    await agent.start();
    const again = await agent.listen(0, "127.0.0.1");
    expect(
      (
        await new EnvdClient(`${again.url}/sandboxes/${id}/envd`, undefined, bearer(key)).sh(
          "echo adopted",
        )
      ).stdout,
    ).toBe("adopted\n");
  });

  it("pauses every running sandbox once the server is gone past the grace period", async () => {
    await agent!.close();
    const { lines, logger } = logCapture();
    agent = makeAgent({ cpGraceSec: 1.5 }, logger);
    await agent.start();
    await agent.listen(0, "127.0.0.1");
    const id = [...ids][0]!;
    expect(agent.runtime.get(id).state).toBe("running");
    await until("a heartbeat", () => lines.some((l) => l.msg === "agent listening"));
    cp.down = true;
    const wentDown = Date.now();
    await until("the grace pause", () => agent!.runtime.get(id).state === "paused", 10_000);
    expect(Date.now() - wentDown).toBeGreaterThanOrEqual(1_000);
    await sleep(1_000);
    const pauses = lines.filter((l) => /grace period/.test(l.msg));
    expect(pauses).toHaveLength(1);
    expect(pauses[0]).toMatchObject({ paused: 1 });
    cp.down = false;
    const beats = cp.heartbeats.length;
    await until("heartbeats again", () => cp.heartbeats.length > beats + 1);
    expect(lines.some((l) => /answers again/.test(l.msg))).toBe(true);
    // The server reconciles; the agent does not resume on its own.
    expect(agent.runtime.get(id).state).toBe("paused");
    expect(cp.heartbeats.at(-1)?.body.sandboxes).toEqual([{ id, state: "paused" }]);
    logs = lines;
  });

  it("revoked credentials: says an admin must register the host again, keeps trying", async () => {
    // The server forgot every pair (host deleted, or a reused refresh token revoked the family).
    cp.pairs.length = 0;
    const refreshes = cp.refreshes.length;
    await until("a refused refresh", () => cp.refreshes.length > refreshes);
    const said = await until("the error", () =>
      logs.find((l) => l.level === 50 && /register this host again/.test(String(l.err))),
    );
    expect(said.msg).toBe("heartbeat failed");
    await until("another try", () => cp.refreshes.length > refreshes + 1);
  });
});
