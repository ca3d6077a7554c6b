import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Agent, createAgent } from "@wrenn/agent";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId, nowIso, Store } from "../src/db/index.js";
import { Fleet, LeastLoadedScheduler } from "../src/hosts/index.js";
import { Reconciler } from "../src/service/index.js";
import { newTeamKey, startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";
import { sandboxRow } from "./helpers/rows.js";

// The server's half of the fleet: registration tokens, registration (the server must reach the
// agent at the URL it advertises), rotation of host credentials, heartbeats, what a team sees of
// hosts, drain, removal and the host monitor. The agents are real agents serving on loopback;
// the calls an agent makes to the server are made here by hand (the agent's own client is the
// subject of the agent's suite, and of fleet.test.ts, which runs agents as processes).

interface Credentials {
  host_id: string;
  host_jwt: string;
  refresh_token: string;
}

for (const engine of testEngines()) {
  describe.skipIf(engine.skipReason)(
    `fleet enrollment on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    () => {
      let server: TestServer;
      let keyA: Record<string, string>;
      let keyB: Record<string, string>;
      let store: Store;
      const agents: { agent: Agent; dir: string; url: string; key: string; hostId: string }[] = [];

      /** A real agent on loopback that takes `key` as its bearer; returns how to register it. */
      async function startAgent() {
        const dir = mkdtempSync(join(tmpdir(), "wrenn-fleet-agent-"));
        const key = randomBytes(32).toString("hex");
        const agent = createAgent({
          config: { agentDir: dir, token: key, warmPool: [] },
          logger: pino({ level: "silent" }),
        });
        const listener = await agent.listen(0, "127.0.0.1");
        const info = await (
          await fetch(`${listener.url}/wrenn.agent.v1.HostAgentService/GetHostInfo`, {
            method: "POST",
            headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
            body: "{}",
          })
        ).json();
        const entry = {
          agent,
          dir,
          url: listener.url,
          key,
          hostId: (info as { hostId: string }).hostId,
        };
        agents.push(entry);
        return entry;
      }

      const registration = (
        a: { url: string; key: string; hostId: string },
        token: string,
        over: Record<string, unknown> = {},
      ) => ({
        token,
        host_id: a.hostId,
        instance_id: randomUUID(),
        advertise_url: a.url,
        hostname: "test-host",
        version: "0.0.0",
        runtimes: ["namespace"],
        default_runtime: "namespace",
        runtime_details: [{ name: "namespace", accel: "" }],
        capacity: { vcpus: 4, memory_mb: 8192, disk_mb: 100_000, max_sandboxes: 0 },
        sandbox_cidr: "10.231.0.0/16",
        agent_key: a.key,
        ...over,
      });

      async function newToken(headers: Record<string, string>, body: unknown = {}) {
        const res = await server.call("POST", "/v1/hosts/tokens", { json: body, headers });
        expect(res.status).toBe(201);
        return ((await res.json()) as { token: string }).token;
      }

      async function register(body: unknown) {
        return server.call("POST", "/v1/hosts/register", { json: body });
      }

      function heartbeat(jwt: string, body: Record<string, unknown>) {
        return server.call("POST", "/v1/hosts/heartbeat", {
          json: body,
          headers: { authorization: `Bearer ${jwt}` },
        });
      }

      beforeAll(async () => {
        server = await startTestServer(engine, { WRENN_HOST_STALE_SEC: "60" });
        store = new Store(server.database.handle.db, server.database.handle.dialect);
        keyA = await newTeamKey(server.app);
        keyB = await newTeamKey(server.app);
      });
      afterAll(async () => {
        for (const a of agents) {
          await a.agent.close().catch(() => {});
          rmSync(a.dir, { recursive: true, force: true });
        }
        await server?.cleanup();
      });

      it("tokens: one-time, team-owned; shared hosts are the operator's to add", async () => {
        const res = await server.call("POST", "/v1/hosts/tokens", { json: {}, headers: keyA });
        expect(res.status).toBe(201);
        const body = (await res.json()) as { token: string; expires_at: string; shared: boolean };
        expect(body.shared).toBe(false);
        expect(Date.parse(body.expires_at) - Date.now()).toBeGreaterThan(3500_000);
        const shared = await server.call("POST", "/v1/hosts/tokens", {
          json: { shared: true },
          headers: keyB,
        });
        expect(shared.status).toBe(403);
        expect(await shared.json()).toMatchObject({ code: "permission_denied" });
        expect(
          (await server.call("POST", "/v1/hosts/tokens", { json: { ttl_sec: 5 }, headers: keyA }))
            .status,
        ).toBe(400);
        expect((await server.call("POST", "/v1/hosts/tokens", { json: {} })).status).toBe(401);
        // The body is optional.
        expect((await server.call("POST", "/v1/hosts/tokens", { headers: keyA })).status).toBe(201);
      });

      it("register: bad tokens, unreachable or wrong agents and taken ids are refused, writing nothing", async () => {
        const a = await startAgent();
        const token = await newToken(keyA);
        for (const bad of ["", "wrh_nope", "x".repeat(600)]) {
          const res = await register(registration(a, bad));
          expect([400, 401]).toContain(res.status);
        }
        // Nothing listens there: refused, and the token stays usable.
        const dead = await register(
          registration(a, token, { advertise_url: "http://127.0.0.1:9" }),
        );
        expect(dead.status).toBe(400);
        expect(((await dead.json()) as { message: string }).message).toMatch(/cannot reach/);
        // The agent answers, but not to that key.
        const wrongKey = await register(registration(a, token, { agent_key: "ab".repeat(32) }));
        expect(wrongKey.status).toBe(400);
        // Another host's id at this agent's URL.
        const wrongId = await register(registration(a, token, { host_id: "another-host" }));
        expect(wrongId.status).toBe(400);
        expect(((await wrongId.json()) as { message: string }).message).toMatch(/is host/);
        // Plain HTTP beyond private addresses is refused before anything is sent there.
        const publicUrl = await register(
          registration(a, token, { advertise_url: "http://203.0.113.7:5007" }),
        );
        expect(publicUrl.status).toBe(400);
        expect(await store.hosts.get(a.hostId)).toBeUndefined();

        const ok = await register(registration(a, token));
        expect(ok.status).toBe(201);
        const creds = (await ok.json()) as Credentials & { heartbeat_sec: number };
        expect(creds.host_id).toBe(a.hostId);
        expect(creds.heartbeat_sec).toBe(10);
        const again = await register(registration(a, token));
        expect(again.status).toBe(401);
        expect(((await again.json()) as { message: string }).message).toMatch(/already used/);
        const taken = await register(registration(a, await newToken(keyA)));
        expect(taken.status).toBe(409);
        expect(await taken.json()).toMatchObject({ code: "conflict" });

        // Expired tokens answer 401 too.
        const expired = await newToken(keyA);
        await server.database.handle.db
          .updateTable("hostRegistrationTokens")
          .set({ expiresAt: nowIso(new Date(Date.now() - 1000)) })
          .where("usedAt", "is", null)
          .execute();
        const b = await startAgent();
        const late = await register(registration(b, expired));
        expect(late.status).toBe(401);
        expect(((await late.json()) as { message: string }).message).toMatch(/expired/);
      });

      it("heartbeats, rotation, reuse detection, and tokens that speak for one host only", async () => {
        const a = await startAgent();
        const b = await startAgent();
        const credsA = (await (
          await register(registration(a, await newToken(keyA)))
        ).json()) as Credentials;
        const credsB = (await (
          await register(registration(b, await newToken(keyA)))
        ).json()) as Credentials;
        const instance = randomUUID();
        const beat = (jwt: string, hostId = a.hostId, over: Record<string, unknown> = {}) =>
          heartbeat(jwt, { host_id: hostId, instance_id: instance, advertise_url: a.url, ...over });

        const ok = await beat(credsA.host_jwt);
        expect(ok.status).toBe(200);
        expect(await ok.json()).toEqual({ host_state: "ready", heartbeat_sec: 10 });
        // A's token cannot speak for B; garbage and user tokens are not host tokens.
        expect((await beat(credsA.host_jwt, b.hostId)).status).toBe(403);
        expect((await beat("x.y.z")).status).toBe(401);
        const user = await server.newUser();
        const userJwt = user.auth.authorization?.slice(7) ?? "";
        expect((await beat(userJwt)).status).toBe(401);
        expect(
          (
            await server.call("GET", "/v1/api-keys", {
              headers: { authorization: `Bearer ${credsA.host_jwt}` },
            })
          ).status,
        ).toBe(401);
        // Another agent process claiming A's id from another address while A is alive.
        const impostor = await beat(credsA.host_jwt, a.hostId, {
          instance_id: randomUUID(),
          advertise_url: b.url,
        });
        expect(impostor.status).toBe(409);

        // Rotation: the new pair works; until it is used, the old refresh token may be
        // presented again (an agent that died before saving the new pair is not locked out).
        const refresh = (token: string) =>
          server.call("POST", "/v1/hosts/refresh", { json: { refresh_token: token } });
        const first = await refresh(credsA.refresh_token);
        expect(first.status).toBe(200);
        const lost = (await first.json()) as Credentials;
        const second = await refresh(credsA.refresh_token);
        expect(second.status).toBe(200);
        const kept = (await second.json()) as Credentials;
        // The pair issued first was never used and is replaced by the second.
        expect((await beat(lost.host_jwt)).status).toBe(401);
        expect((await beat(kept.host_jwt)).status).toBe(200);
        // Now the old refresh token is revoked; presented again it is reuse: the family goes.
        const reused = await refresh(credsA.refresh_token);
        expect(reused.status).toBe(401);
        expect(((await reused.json()) as { message: string }).message).toMatch(/reused/);
        expect((await beat(kept.host_jwt)).status).toBe(401);
        expect((await refresh(kept.refresh_token)).status).toBe(401);
        // B is untouched.
        expect(
          (
            await heartbeat(credsB.host_jwt, {
              host_id: b.hostId,
              instance_id: "b",
              advertise_url: b.url,
            })
          ).status,
        ).toBe(200);
      });

      it("hosts: a team sees its own and shared ones; drain; remove refuses while sandboxes remain", async () => {
        const a = await startAgent();
        const creds = (await (
          await register(registration(a, await newToken(keyA)))
        ).json()) as Credentials;
        const list = (await (await server.call("GET", "/v1/hosts", { headers: keyA })).json()) as {
          hosts: { id: string; address: string | null; shared: boolean }[];
        };
        const mine = list.hosts.find((h) => h.id === a.hostId);
        expect(mine).toMatchObject({
          address: a.url,
          shared: false,
          runtime_details: [{ name: "namespace", accel: "" }],
        });
        expect((await server.call("GET", `/v1/hosts/${a.hostId}`, { headers: keyB })).status).toBe(
          404,
        );
        expect(
          (await server.call("POST", `/v1/hosts/${a.hostId}/drain`, { headers: keyB })).status,
        ).toBe(404);
        const hostsOfB = (await (
          await server.call("GET", "/v1/hosts", { headers: keyB })
        ).json()) as {
          hosts: { id: string }[];
        };
        expect(hostsOfB.hosts.map((h) => h.id)).not.toContain(a.hostId);

        const drained = await server.call("POST", `/v1/hosts/${a.hostId}/drain`, { headers: keyA });
        expect(await drained.json()).toMatchObject({ state: "draining" });
        const beat = await heartbeat(creds.host_jwt, {
          host_id: a.hostId,
          instance_id: "x",
          advertise_url: a.url,
        });
        expect(await beat.json()).toMatchObject({ host_state: "draining" });

        // A row on the host (as a create would leave it): removal is refused, naming it.
        const teamA = (await (
          await server.call("GET", "/v1/auth/whoami", { headers: keyA })
        ).json()) as {
          team_id: string;
        };
        const id = newId();
        const at = nowIso();
        await store.sandboxes.insert(
          sandboxRow(teamA.team_id, {
            id,
            hostId: a.hostId,
            createdAt: at,
            updatedAt: at,
            lastActiveAt: at,
          }),
        );
        const refused = await server.call("DELETE", `/v1/hosts/${a.hostId}`, { headers: keyA });
        expect(refused.status).toBe(409);
        expect(await refused.json()).toMatchObject({ code: "conflict", sandboxes: [id] });
        const forced = await server.call("DELETE", `/v1/hosts/${a.hostId}?force=true`, {
          headers: keyA,
        });
        expect(forced.status).toBe(204);
        expect(await store.sandboxes.getById(id)).toMatchObject({ state: "stopped" });
        expect((await server.call("GET", `/v1/hosts/${a.hostId}`, { headers: keyA })).status).toBe(
          404,
        );
        // Its credentials are gone with it.
        const after = await heartbeat(creds.host_jwt, { host_id: a.hostId, instance_id: "x" });
        expect(after.status).toBe(401);
      });

      it("placement: the team's own hosts first, then shared ones; never another team's, nor a draining one", async () => {
        const own = await startAgent();
        const shared = await startAgent();
        const theirs = await startAgent();
        const admin = (await (
          await server.call("GET", "/v1/auth/whoami", { headers: keyA })
        ).json()) as {
          team_id: string;
        };
        await store.users.makeAdminTeam(admin.team_id);
        await register(registration(own, await newToken(keyA)));
        await register(registration(shared, await newToken(keyA, { shared: true })));
        await register(registration(theirs, await newToken(keyB)));
        const teamB = (await (
          await server.call("GET", "/v1/auth/whoami", { headers: keyB })
        ).json()) as {
          team_id: string;
        };
        // Only these three hosts count here: the others of this suite are drained.
        for (const h of await store.hosts.list()) {
          if (![own.hostId, shared.hostId, theirs.hostId].includes(h.id))
            await store.hosts.transition(h.id, ["ready", "unreachable"], "draining");
        }
        const fleet = new Fleet(
          store,
          server.registry,
          new LeastLoadedScheduler(),
          pino({ level: "silent" }),
        );
        const request = { vcpus: 1, memoryMb: 512 };
        for (let i = 0; i < 3; i++) {
          expect((await fleet.place(admin.team_id, request)).hostId).toBe(own.hostId);
        }
        expect((await fleet.place(teamB.team_id, request)).hostId).toBe(theirs.hostId);
        // Team A's own host drains: shared next; B's own host is never A's.
        await store.hosts.transition(own.hostId, ["ready"], "draining");
        for (let i = 0; i < 3; i++) {
          expect((await fleet.place(admin.team_id, request)).hostId).toBe(shared.hostId);
        }
        await expect(
          fleet.place(admin.team_id, { ...request, hostId: theirs.hostId }),
        ).rejects.toMatchObject({
          code: "not_found",
        });
        // More memory than any host has: no retry helps, so a bad request, not a 503.
        await expect(
          fleet.place(admin.team_id, { ...request, memoryMb: 10_000_000 }),
        ).rejects.toMatchObject({
          code: "invalid_argument",
        });
        await expect(
          fleet.place(admin.team_id, { ...request, runtime: "microvm" }),
        ).rejects.toMatchObject({
          code: "unavailable",
        });
      });

      it("monitor: a silent host becomes unreachable, its sandboxes missing (503), and come back", async () => {
        const a = await startAgent();
        const creds = (await (
          await register(registration(a, await newToken(keyA)))
        ).json()) as Credentials;
        const whoami = (await (
          await server.call("GET", "/v1/auth/whoami", { headers: keyA })
        ).json()) as {
          team_id: string;
        };
        const id = newId();
        const old = nowIso(new Date(Date.now() - 60_000));
        await store.sandboxes.insert(
          sandboxRow(whoami.team_id, {
            id,
            hostId: a.hostId,
            createdAt: old,
            updatedAt: old,
            lastActiveAt: old,
          }),
        );
        await store.hosts.markSeen(a.hostId, "ready", old);
        const reconciler = new Reconciler(store, server.registry, pino({ level: "silent" }), {
          staleSec: 2,
        });
        const report = await reconciler.tick();
        expect(report.unreachable).toContain(a.hostId);
        expect(report.changed[id]).toBe("missing");
        const exec = await server.call("POST", `/v1/sandboxes/${id}/exec`, {
          json: { cmd: "true" },
          headers: keyA,
        });
        expect(exec.status).toBe(503);
        expect(await exec.json()).toMatchObject({ code: "host_unreachable" });
        // Nothing is placed on an unreachable host.
        const create = await server.call("POST", "/v1/sandboxes", {
          json: { host_id: a.hostId },
          headers: keyA,
        });
        expect(create.status).toBe(409);

        // It reports in again; the agent has no such sandbox, so the row is stopped.
        const back = await heartbeat(creds.host_jwt, {
          host_id: a.hostId,
          instance_id: "y",
          advertise_url: a.url,
        });
        expect(back.status).toBe(200);
        expect(await store.hosts.get(a.hostId)).toMatchObject({ state: "ready" });
        const after = await reconciler.tick();
        expect(after.changed[id]).toBe("stopped");
        await reconciler.stop();
      });
    },
  );
}
