import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { keepHostFirewallState } from "@wrenn/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { readClientConfig } from "../src/single-host/bootstrap.js";
import { type TestDatabase, testEngines } from "./helpers/databases.js";
import {
  agentCall,
  agentCredentials,
  agentSandboxes,
  apiClient,
  type FleetAgent,
  type FleetServer,
  freePort,
  selfSignedCert,
  sharedSecret,
  startFakeBalancer,
  startFleetAgent,
  startFleetServer,
  stopAgentWithSandboxes,
} from "./helpers/fleet.js";
import { spawnDaemon, until } from "./helpers/processes.js";

// The fleet for real: PostgreSQL, server replicas and three agents, each its own process on this
// machine with its own state dir, port and sandbox range. Needs root (namespaces) like the
// single-host suite. Agents reach the replicas through a fake load balancer (a TCP forwarder).

const postgres = testEngines().find((e) => e.name === "postgres");
const root = process.getuid?.() === 0;
const skip = !root ? "needs root" : postgres?.skipReason;
const TEMPLATE = "test-minimal";
const STALE_SEC = 4;
const GRACE_SEC = 6;

interface Host {
  id: string;
  state: string;
  shared: boolean;
}
interface Sandbox {
  id: string;
  state: string;
  host_id: string;
}

describe.skipIf(skip)(
  `a fleet of hosts${skip ? ` (skipped: ${skip})` : ""}`,
  { timeout: 120_000 },
  () => {
    const logDir = mkdtempSync(join(tmpdir(), "wrenn-fleet-logs-"));
    const secret = sharedSecret();
    let database: TestDatabase;
    let databaseUrl: string;
    const servers: FleetServer[] = [];
    const agents: FleetAgent[] = [];
    let balancer: Awaited<ReturnType<typeof startFakeBalancer>>;
    let api: ReturnType<typeof apiClient>;
    let apiKey: string;
    let restoreHost: () => Promise<void> = async () => {};
    const hostIds: string[] = [];

    const serverEnv = {
      WRENN_JWT_SECRET: secret,
      WRENN_DEFAULT_TEMPLATE: TEMPLATE,
      WRENN_HEARTBEAT_SEC: "1",
      WRENN_HOST_STALE_SEC: String(STALE_SEC),
      WRENN_RECONCILE_INTERVAL_MS: "500",
      // Short-lived host JWTs: agents rotate their credentials every few seconds all along.
      WRENN_HOST_JWT_TTL_SEC: "6",
    };
    const agentEnv = { WRENN_HEARTBEAT_SEC: "1", WRENN_CP_GRACE_SEC: String(GRACE_SEC) };

    const live = () =>
      servers.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null);

    async function addAgent(i: number, token: string): Promise<FleetAgent> {
      const dir = join(logDir, `agent-${i}`);
      mkdirSync(dir, { recursive: true });
      const agent = startFleetAgent(
        `agent-${i}`,
        { dir, port: await freePort(), cidr: `10.250.${i}.0/24`, serverUrl: balancer.url, token },
        agentEnv,
        logDir,
      );
      agents[i] = agent;
      return agent;
    }

    async function restartAgent(i: number, env: Record<string, string> = {}): Promise<FleetAgent> {
      const old = agents[i] as FleetAgent;
      const agent = startFleetAgent(
        `agent-${i}`,
        { dir: old.dir, port: old.port, cidr: old.cidr, serverUrl: balancer.url },
        { ...agentEnv, ...env },
        logDir,
      );
      agents[i] = agent;
      return agent;
    }

    const host = async (id: string) => (await api<Host>("GET", `/v1/hosts/${id}`)).body;
    const sandbox = async (id: string) => (await api<Sandbox>("GET", `/v1/sandboxes/${id}`)).body;
    const exec = (id: string, cmd: string) =>
      api<{ stdout: string; exit_code: number; code?: string }>(
        "POST",
        `/v1/sandboxes/${id}/exec`,
        {
          cmd,
        },
      );
    async function create(body: Record<string, unknown> = {}): Promise<Sandbox> {
      const res = await api<Sandbox>("POST", "/v1/sandboxes", {
        memory_mb: 128,
        disk_size_mb: 64,
        ...body,
      });
      if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    }

    /** Builds a template through the API; fails unless its log ends in `done`. */
    async function buildTemplate(recipe: Record<string, unknown>): Promise<void> {
      const res = await fetch(`${balancer.url}/v1/templates/builds`, {
        method: "POST",
        headers: { "x-api-key": apiKey, "content-type": "application/json" },
        body: JSON.stringify({ memory_mb: 128, disk_size_mb: 64, ...recipe }),
      });
      const lines = (await res.text()).trim().split("\n");
      expect(JSON.parse(lines.at(-1) ?? "{}"), lines.slice(-3).join("\n")).toMatchObject({
        type: "done",
      });
    }

    beforeAll(async () => {
      restoreHost = await keepHostFirewallState();
      database = await (postgres as NonNullable<typeof postgres>).create();
      databaseUrl = database.options.databaseUrl as string;
      balancer = await startFakeBalancer(() => live().map((s) => s.port));
      servers.push(await startFleetServer("server-1", databaseUrl, serverEnv, logDir));
      // The first start on an empty database makes the admin (the operator's team) and its key.
      const config = await until("the admin's client config", () =>
        readClientConfig(join((servers[0] as FleetServer).dataDir, "config.json")),
      );
      apiKey = config.api_key;
      api = apiClient(() => balancer.url, config.api_key);
    }, 60_000);

    afterAll(async () => {
      // Every sandbox goes, through each agent that is still up (their own bearer), then the agents.
      for (const agent of agents) if (agent) await stopAgentWithSandboxes(agent);
      for (const server of servers) await server.stop();
      await balancer?.close();
      await database?.cleanup();
      await restoreHost();
      if (process.env.WRENN_TEST_KEEP_LOGS) console.info(`[fleet] logs kept in ${logDir}`);
      else rmSync(logDir, { recursive: true, force: true });
    });

    it("registers three agents with one-time tokens; one instance per state dir and per range", async () => {
      for (const i of [0, 1, 2]) {
        const token = await api<{ token: string }>("POST", "/v1/hosts/tokens", { shared: true });
        expect(token.status).toBe(201);
        await addAgent(i, token.body.token);
      }
      await until("three ready hosts", async () => {
        const { body } = await api<{ hosts: Host[] }>("GET", "/v1/hosts");
        return body.hosts.filter((h) => h.state === "ready").length === 3;
      });
      for (const agent of agents) {
        const creds = agentCredentials(agent.dir);
        hostIds.push(creds.host_id);
        expect(statSync(join(agent.dir, "credentials.json")).mode & 0o777).toBe(0o600);
      }
      // A second agent on a state dir in use, or on a range in use, refuses before touching it.
      const twin = startFleetAgent(
        "twin",
        {
          dir: (agents[0] as FleetAgent).dir,
          port: await freePort(),
          cidr: "10.250.9.0/24",
          serverUrl: balancer.url,
        },
        agentEnv,
        logDir,
      );
      expect(await twin.exited).not.toBe(0);
      const overlap = startFleetAgent(
        "overlap",
        {
          dir: join(logDir, "agent-overlap"),
          port: await freePort(),
          cidr: "10.250.1.0/25",
          serverUrl: balancer.url,
        },
        agentEnv,
        logDir,
      );
      expect(await overlap.exited).not.toBe(0);
      expect((await api<{ hosts: Host[] }>("GET", "/v1/hosts")).body.hosts).toHaveLength(3);
    });

    it("spreads creates over the hosts; every sandbox carries its host", async () => {
      const made = [];
      for (let i = 0; i < 6; i++) made.push(await create({ metadata: { wave: "1" } }));
      expect(new Set(made.map((s) => s.host_id))).toEqual(new Set(hostIds));
      for (const s of made) {
        const run = await exec(s.id, "echo hi");
        expect(run.body.stdout).toBe("hi\n");
      }
    });

    it("uploads through an agent's proxy: whole when taken, its error when refused while still being sent", async () => {
      const s = await create();
      await exec(s.id, "touch /home/user/plain");
      const body = Buffer.alloc(8 * 2 ** 20, 1);
      for (let round = 0; round < 3; round++) {
        // envd refuses it before reading the body (a path under a file) and answers at once.
        const res = await fetch(
          `${balancer.url}/v1/sandboxes/${s.id}/files?path=/home/user/plain/x.bin`,
          {
            method: "PUT",
            headers: { "x-api-key": apiKey, "content-type": "application/octet-stream" },
            body,
          },
        );
        expect(res.status).toBe(409);
        expect(await res.json()).toMatchObject({
          code: "failed_precondition",
          message: expect.stringMatching(/not a directory/),
        });
      }
      const taken = Buffer.from(
        Array.from({ length: 8 * 2 ** 18 }, (_, i) => i).join(","),
      ).subarray(0, 8 * 2 ** 20);
      const put = await fetch(`${balancer.url}/v1/sandboxes/${s.id}/files?path=/home/user/ok.bin`, {
        method: "PUT",
        headers: { "x-api-key": apiKey, "content-type": "application/octet-stream" },
        body: taken,
      });
      expect(put.status, await put.clone().text()).toBe(200);
      const read = await fetch(
        `${balancer.url}/v1/sandboxes/${s.id}/files?path=/home/user/ok.bin`,
        {
          headers: { "x-api-key": apiKey },
        },
      );
      expect(Buffer.from(await read.arrayBuffer()).equals(taken)).toBe(true);
      await api("DELETE", `/v1/sandboxes/${s.id}`);
    });

    it("starts a sandbox on another host from a snapshot made on one (the snapshot is copied)", async () => {
      const source = await create({ host_id: hostIds[0] });
      expect(source.host_id).toBe(hostIds[0]);
      await exec(source.id, "echo carried > /home/user/note");
      const snap = await api("POST", "/v1/snapshots", { sandbox_id: source.id, name: "carried" });
      expect(snap.status).toBe(201);
      const copy = await create({ snapshot: "carried", host_id: hostIds[1] });
      expect(copy.host_id).toBe(hostIds[1]);
      expect((await exec(copy.id, "cat /home/user/note")).body.stdout).toBe("carried\n");
      // A template built from it starts on the host that has neither: the snapshot goes there
      // first, under the build's layers.
      await buildTemplate({
        name: "on-carried",
        from: { snapshot: "carried" },
        steps: [{ type: "run", cmd: "echo built > /opt/built", user: "root" }],
      });
      const third = await create({ template: "on-carried", host_id: hostIds[2] });
      expect((await exec(third.id, "cat /home/user/note /opt/built")).body.stdout).toBe(
        "carried\nbuilt\n",
      );
      // Deleting it reaches every host that holds a copy (once no sandbox uses it).
      for (const s of [copy, source, third]) await api("DELETE", `/v1/sandboxes/${s.id}`);
      expect((await api("DELETE", "/v1/templates/on-carried")).status).toBe(204);
      expect((await api("DELETE", "/v1/snapshots/carried")).status).toBe(204);
      for (const agent of agents.slice(0, 3) as FleetAgent[]) {
        const { snapshots } = await agentCall<{ snapshots?: unknown[] }>(agent, "ListSnapshots");
        expect(snapshots ?? []).toHaveLength(0);
      }
    });

    it("starts sandboxes of a built template on every host (its layers are copied first)", async () => {
      await buildTemplate({
        name: "fleet-tpl",
        from: { template: TEMPLATE },
        steps: [
          { type: "run", cmd: "echo one > /opt/one", user: "root" },
          { type: "run", cmd: "echo two > /opt/two", user: "root" },
        ],
      });
      const made: Sandbox[] = [];
      for (const hostId of hostIds.slice(0, 2)) {
        const s = await create({ template: "fleet-tpl", host_id: hostId });
        made.push(s);
        expect((await exec(s.id, "cat /opt/one /opt/two")).body.stdout).toBe("one\ntwo\n");
      }
      for (const s of made) await api("DELETE", `/v1/sandboxes/${s.id}`);
      expect((await api("DELETE", "/v1/templates/fleet-tpl")).status).toBe(204);
    });

    it("drain: no new sandboxes there; those on it keep running", async () => {
      const drainedId = hostIds[2] as string;
      const onIt = await create({ host_id: drainedId });
      const drained = await api<Host>("POST", `/v1/hosts/${drainedId}/drain`);
      expect(drained.body.state).toBe("draining");
      for (let i = 0; i < 4; i++) expect((await create()).host_id).not.toBe(drainedId);
      expect((await exec(onIt.id, "echo still")).body.stdout).toBe("still\n");
      const pinned = await api("POST", "/v1/sandboxes", { host_id: drainedId });
      expect(pinned.status).toBe(409);
    });

    it("kill -9 of an agent: unreachable and missing in the window, others unaffected, then it returns", async () => {
      const victim = agents[1] as FleetAgent;
      const victimId = hostIds[1] as string;
      const onVictim = await create({ host_id: victimId });
      const elsewhere = await create({ host_id: hostIds[0] });
      const killedAt = Date.now();
      await victim.stop("SIGKILL");
      await until(
        "the host to be unreachable",
        async () => (await host(victimId)).state === "unreachable",
        30_000,
      );
      const detectedMs = Date.now() - killedAt;
      console.info(
        `[fleet] agent killed → unreachable in ${detectedMs} ms (stale window ${STALE_SEC} s)`,
      );
      expect((await sandbox(onVictim.id)).state).toBe("missing");
      const refused = await exec(onVictim.id, "true");
      expect(refused.status).toBe(503);
      expect(refused.body.code).toBe("host_unreachable");
      expect((await exec(elsewhere.id, "echo fine")).body.stdout).toBe("fine\n");
      for (let i = 0; i < 3; i++) expect((await create()).host_id).not.toBe(victimId);
      // Killed while its host was away: marked stopped now, destroyed there when it returns.
      const doomed = await create({ host_id: hostIds[0] });
      const missingToKill = onVictim.id;
      await api("DELETE", `/v1/sandboxes/${missingToKill}`);
      expect((await sandbox(missingToKill)).state).toBe("stopped");
      await api("DELETE", `/v1/sandboxes/${doomed.id}`);

      await restartAgent(1);
      await until(
        "the host to be ready again",
        async () => (await host(victimId)).state === "ready",
        30_000,
      );
      await until(
        "the orphan to be destroyed on the returned host",
        async () => {
          const sandboxes = await agentSandboxes(agents[1] as FleetAgent);
          return !sandboxes.some((s) => s.sandboxId === missingToKill);
        },
        60_000,
      );
    });

    it("a crash between being issued new credentials and saving them never locks an agent out", async () => {
      const agent = agents[0] as FleetAgent;
      await agent.stop();
      // Exits right after the server issues a new pair, before it is saved (a test hook).
      const crashing = await restartAgent(0, { WRENN_TEST_CRASH_AFTER_REFRESH: "1" });
      const code = await Promise.race([crashing.exited, sleep(30_000).then(() => "timeout")]);
      expect(code).not.toBe("timeout");
      const before = (await host(hostIds[0] as string)).state;
      expect(["ready", "unreachable"]).toContain(before);
      await restartAgent(0);
      // Back on the old refresh token, and rotating again afterwards.
      await sleep(8_000);
      expect((await host(hostIds[0] as string)).state).toBe("ready");
      expect(agents[0]?.proc.exitCode).toBeNull();
    });

    it("replicas: the API answers on both; streams go through either; duties move when one dies", async () => {
      servers.push(await startFleetServer("server-2", databaseUrl, serverEnv, logDir));
      const [first, second] = servers as [FleetServer, FleetServer];
      // One server per data dir: a second one on the first's refuses before touching anything.
      const twin = spawnDaemon(
        "server-twin",
        first.script,
        ["serve"],
        {
          WRENN_EMBEDDED_AGENT: "false",
          WRENN_DATABASE_URL: databaseUrl,
          WRENN_DATA_DIR: first.dataDir,
          WRENN_PORT: "0",
        },
        join(logDir, "server-twin.log"),
      );
      expect(await twin.exited).not.toBe(0);
      expect(twin.output()).toMatch(new RegExp(`pid ${first.proc.pid}`));
      const config = await readClientConfig(join(first.dataDir, "config.json"));
      const viaSecond = apiClient(() => second.url, config?.api_key as string);
      const listed = await viaSecond<{ sandboxes: Sandbox[] }>("GET", "/v1/sandboxes");
      expect(listed.status).toBe(200);
      const target = listed.body.sandboxes.find(
        (s) => s.state === "running" && s.host_id === hostIds[0],
      ) as Sandbox;
      expect(target).toBeDefined();
      // An exec stream through the replica that did not create the sandbox.
      const out = await new Promise<string>((resolve, reject) => {
        const ws = new WebSocket(
          `${second.url.replace("http", "ws")}/v1/sandboxes/${target.id}/exec/stream`,
          {
            headers: { "x-api-key": config?.api_key as string },
          },
        );
        let text = "";
        ws.on("open", () => ws.send(JSON.stringify({ type: "start", cmd: "echo via-replica" })));
        ws.on("message", (data, binary) => {
          const buf = data as Buffer;
          if (binary) text += buf.subarray(1).toString("utf8");
          else if ((JSON.parse(buf.toString()) as { type: string }).type === "end") {
            ws.close();
            resolve(text);
          }
        });
        ws.on("error", reject);
      });
      expect(out).toBe("via-replica\n");

      // The first replica holds the duties; it dies, the second takes them within a tick.
      await first.stop("SIGKILL");
      const paused = agents[2] as FleetAgent;
      paused.proc.kill("SIGSTOP");
      try {
        await until(
          "the second replica to mark the silent host unreachable",
          async () => {
            return (
              (await viaSecond<Host>("GET", `/v1/hosts/${hostIds[2]}`)).body.state === "unreachable"
            );
          },
          30_000,
        );
      } finally {
        paused.proc.kill("SIGCONT");
      }
      await until(
        "the host to come back",
        async () => (await host(hostIds[2] as string)).state !== "unreachable",
        30_000,
      );
    });

    it("TLS: an agent serving HTTPS joins; the server trusts only the certificate it registered", async () => {
      const tls = selfSignedCert(logDir, "agent-3");
      const dir = join(logDir, "agent-3");
      mkdirSync(dir, { recursive: true });
      const token = await api<{ token: string }>("POST", "/v1/hosts/tokens", { shared: true });
      const agent = startFleetAgent(
        "agent-3",
        {
          dir,
          port: await freePort(),
          cidr: "10.250.3.0/24",
          serverUrl: balancer.url,
          token: token.body.token,
          tls,
        },
        agentEnv,
        logDir,
      );
      agents[3] = agent;
      expect(agent.url.startsWith("https://")).toBe(true);
      const hostId = await until("the HTTPS agent to register", async () => {
        try {
          return agentCredentials(dir).host_id;
        } catch {
          return undefined;
        }
      });
      await until("it to be ready", async () => (await host(hostId)).state === "ready");
      const s = await create({ host_id: hostId });
      await exec(s.id, "echo over-tls > /home/user/t");
      const read = await fetch(`${balancer.url}/v1/sandboxes/${s.id}/files?path=/home/user/t`, {
        headers: { "x-api-key": apiKey },
      });
      expect(await read.text()).toBe("over-tls\n");
      // Plain HTTP to it fails: it speaks only TLS.
      await expect(fetch(`http://127.0.0.1:${agent.port}/`)).rejects.toThrow();
      await api("DELETE", `/v1/sandboxes/${s.id}`);
      expect((await api("DELETE", `/v1/hosts/${hostId}?force=true`)).status).toBe(204);
    });

    it("delete: refused while sandboxes remain (naming them); force removes and revokes", async () => {
      const id = hostIds[2] as string;
      const refused = await api<{ code: string; sandboxes: string[] }>("DELETE", `/v1/hosts/${id}`);
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe("conflict");
      expect(refused.body.sandboxes.length).toBeGreaterThan(0);
      const forced = await api("DELETE", `/v1/hosts/${id}?force=true`);
      expect(forced.status).toBe(204);
      for (const sid of refused.body.sandboxes) expect((await sandbox(sid)).state).toBe("stopped");
      expect((await api("GET", `/v1/hosts/${id}`)).status).toBe(404);
      expect(await agentSandboxes(agents[2] as FleetAgent)).toHaveLength(0);
    });

    it("the control plane gone past the grace: agents pause everything, then reconcile", async () => {
      const running = (await api<{ sandboxes: Sandbox[] }>("GET", "/v1/sandboxes?state=running"))
        .body.sandboxes;
      const watched = running.filter((s) => s.host_id === hostIds[0]);
      expect(watched.length).toBeGreaterThan(0);
      for (const server of live()) await server.stop("SIGKILL");
      await until(
        "the agent to pause its sandboxes",
        async () => {
          const sandboxes = await agentSandboxes(agents[0] as FleetAgent);
          return sandboxes.length > 0 && sandboxes.every((s) => s.state === "SANDBOX_STATE_PAUSED");
        },
        (GRACE_SEC + 20) * 1000,
      );
      servers.push(await startFleetServer("server-3", databaseUrl, serverEnv, logDir));
      await until("the database to show them paused", async () => {
        for (const s of watched) if ((await sandbox(s.id)).state !== "paused") return false;
        return true;
      });
      const resumed = await api<Sandbox>("POST", `/v1/sandboxes/${watched[0]?.id}/resume`, {});
      expect(resumed.body.state).toBe("running");
      expect((await exec(watched[0]?.id as string, "echo back")).body.stdout).toBe("back\n");
    });
  },
);
