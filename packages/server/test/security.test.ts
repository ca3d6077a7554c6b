import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { loadConfig } from "../src/config/index.js";
import { newId, Store } from "../src/db/index.js";
import { listenApp } from "../src/serve.js";
import { startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";
import { sandboxRow, templateRow } from "./helpers/rows.js";

// Security findings of issue #13 that need no agent: each case failed on the code before its fix.

for (const engine of testEngines()) {
  describe.skipIf(engine.skipReason)(
    `security on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    () => {
      let server: TestServer;

      beforeAll(async () => {
        server = await startTestServer(engine);
      });
      afterAll(async () => {
        await server?.cleanup();
      });

      async function apiKey(auth: Record<string, string>): Promise<Record<string, string>> {
        const res = await server.call("POST", "/v1/api-keys", {
          json: { name: "k" },
          headers: auth,
        });
        return { "x-api-key": ((await res.json()) as { key: string }).key };
      }

      it("another team's snapshot id as template is 404 like a missing one", async () => {
        const a = await server.newUser();
        const b = await server.newUser();
        const store = new Store(server.database.handle.db, server.database.handle.dialect);
        const theirs = templateRow(b.teamId, "secret", { sourceSandboxId: newId() });
        await store.templates.insert(theirs);
        const keyA = await apiKey(a.auth);
        const create = (template: string) =>
          server.call("POST", "/v1/sandboxes", { json: { template }, headers: keyA });
        const stolen = await create(theirs.id);
        const missing = await create(newId());
        expect(stolen.status).toBe(404);
        expect(missing.status).toBe(404);
        const [s, m] = (await Promise.all([stolen.json(), missing.json()])) as {
          code: string;
          message: string;
        }[];
        expect(s?.code).toBe("not_found");
        expect(s?.message.replace(theirs.id, "X")).toBe(m?.message.replace(/"[a-z0-9]+"/, '"X"'));
      });

      it("sign-up is closed by default beyond loopback, open on loopback", () => {
        expect(loadConfig({ WRENN_HOST: "0.0.0.0" }).signup).toBe("closed");
        expect(loadConfig({ WRENN_HOST: "127.0.0.1" }).signup).toBe("open");
        expect(loadConfig({}).signup).toBe("open");
        expect(() => loadConfig({ WRENN_SIGNUP: "sometimes" })).toThrow(/WRENN_SIGNUP/);
      });

      it("sign-up follows WRENN_SIGNUP; an owner's invitation joins its team, once", async () => {
        const invited = await startTestServer(engine, { WRENN_SIGNUP: "invite" });
        const closed = await startTestServer(engine, { WRENN_SIGNUP: "closed" });
        try {
          const signup = (s: TestServer, json: Record<string, string>) =>
            s.call("POST", "/v1/auth/signup", { json: { password: "long enough", ...json } });
          const refused = await signup(closed, { email: "a@example.com" });
          expect(refused.status).toBe(403);
          expect(await refused.json()).toMatchObject({ code: "permission_denied" });
          expect((await signup(invited, { email: "a@example.com" })).status).toBe(403);

          // The owner is made the way first start makes the admin (not through the route).
          const owner = await invited.services.accounts.signup("owner@example.com", "long enough");
          const login = await invited.call("POST", "/v1/auth/login", {
            json: { email: "owner@example.com", password: "long enough" },
          });
          const { token } = (await login.json()) as { token: string };
          const made = await invited.call("POST", "/v1/teams/invites", {
            headers: { authorization: `Bearer ${token}` },
          });
          expect(made.status).toBe(201);
          const invite = ((await made.json()) as { token: string }).token;
          const joined = await signup(invited, { email: "b@example.com", invite });
          expect(joined.status).toBe(201);
          expect(await joined.json()).toMatchObject({ team_id: owner.teamId });
          const again = await signup(invited, { email: "c@example.com", invite });
          expect(again.status).toBe(403);
          expect(
            (await signup(invited, { email: "d@example.com", invite: "wrninv_x" })).status,
          ).toBe(403);

          // A member (not an owner) cannot invite.
          const member = await invited.call("POST", "/v1/auth/login", {
            json: { email: "b@example.com", password: "long enough" },
          });
          const memberToken = ((await member.json()) as { token: string }).token;
          const denied = await invited.call("POST", "/v1/teams/invites", {
            headers: { authorization: `Bearer ${memberToken}` },
          });
          expect(denied.status).toBe(403);

          // Every member sees the team's members; only an owner removes one, never the last owner.
          const asOwner = { authorization: `Bearer ${token}` };
          const asMember = { authorization: `Bearer ${memberToken}` };
          const listed = await invited.call("GET", "/v1/teams/members", { headers: asMember });
          expect(listed.status).toBe(200);
          const { members } = (await listed.json()) as {
            members: { user_id: string; email: string; role: string }[];
          };
          expect(members.map((m) => [m.email, m.role])).toEqual([
            ["owner@example.com", "owner"],
            ["b@example.com", "member"],
          ]);
          const memberId = members[1]?.user_id as string;
          const remove = (id: string, headers: Record<string, string>) =>
            invited.call("DELETE", `/v1/teams/members/${id}`, { headers });
          expect((await remove(owner.id, asMember)).status).toBe(403);
          const last = await remove(owner.id, asOwner);
          expect(last.status).toBe(409);
          expect(await last.json()).toMatchObject({ code: "failed_precondition" });
          expect((await remove("nobody", asOwner)).status).toBe(404);
          expect((await remove(memberId, asOwner)).status).toBe(204);
          // The removed member's login token no longer opens the team.
          expect(
            (await invited.call("GET", "/v1/teams/members", { headers: asMember })).status,
          ).toBe(401);
          const after = await invited.call("GET", "/v1/teams/members", { headers: asOwner });
          expect(((await after.json()) as { members: unknown[] }).members).toHaveLength(1);
        } finally {
          await invited.cleanup();
          await closed.cleanup();
        }
      }, 90_000); // Two servers and several password hashes: slow on a loaded machine.

      it("rate-limits auth per client address and per account with 429 and Retry-After", async () => {
        const limited = await startTestServer(engine, {
          WRENN_RATE_AUTH_IP_PER_MIN: "3",
          WRENN_RATE_AUTH_ACCOUNT_PER_MIN: "2",
        });
        try {
          const login = (email: string, ip: string) =>
            limited.app.request(
              "/v1/auth/login",
              {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ email, password: "wrong password" }),
              },
              { incoming: { socket: { remoteAddress: ip } } },
            );
          // Per address: three attempts, then 429, whatever the account.
          for (const i of [1, 2, 3])
            expect((await login(`x${i}@example.com`, "10.9.0.1")).status).toBe(401);
          const flooded = await login("x4@example.com", "10.9.0.1");
          expect(flooded.status).toBe(429);
          expect(Number(flooded.headers.get("retry-after"))).toBeGreaterThan(0);
          expect(await flooded.json()).toMatchObject({ code: "resource_exhausted" });
          // Per account: two attempts from anywhere, then 429.
          expect((await login("victim@example.com", "10.9.0.2")).status).toBe(401);
          expect((await login("victim@example.com", "10.9.0.3")).status).toBe(401);
          expect((await login("Victim@example.com", "10.9.0.4")).status).toBe(429);
        } finally {
          await limited.cleanup();
        }
      });

      it("quotas refuse creates and watches past a team's limits, naming the limit; an admin overrides", async () => {
        const q = await startTestServer(engine, {
          WRENN_TEAM_RUNNING_SANDBOXES: "2",
          WRENN_TEAM_VCPUS: "4",
          WRENN_TEAM_FILE_WATCHES: "0",
        });
        try {
          const a = await q.newUser();
          const keyA = await (async () => {
            const res = await q.call("POST", "/v1/api-keys", {
              json: { name: "k" },
              headers: a.auth,
            });
            return { "x-api-key": ((await res.json()) as { key: string }).key };
          })();
          const create = (json: Record<string, unknown> = {}) =>
            q.call("POST", "/v1/sandboxes", { json, headers: keyA });
          const refusal = async (res: Response) => {
            expect(res.status).toBe(403);
            return (await res.json()) as { code: string; message: string; limit: string };
          };
          expect(await refusal(await create({ vcpus: 8 }))).toMatchObject({
            code: "permission_denied",
            limit: "vcpus",
            message: expect.stringContaining("quota vcpus"),
          });
          const store = new Store(q.database.handle.db, q.database.handle.dialect);
          for (let i = 0; i < 2; i++) {
            await store.sandboxes.insert(sandboxRow(a.teamId));
          }
          expect(await refusal(await create())).toMatchObject({ limit: "running_sandboxes" });
          const sandboxId = (
            (await (await q.call("GET", "/v1/sandboxes", { headers: keyA })).json()) as {
              sandboxes: { id: string }[];
            }
          ).sandboxes[0]?.id;
          const watch = await q.call("GET", `/v1/sandboxes/${sandboxId}/files/watch?path=/tmp`, {
            headers: keyA,
          });
          expect(await refusal(watch)).toMatchObject({ limit: "file_watches" });

          // Only the operator's team may override; then the create passes the quota (and, with
          // no agent here, stops at 503).
          const put = (auth: Record<string, string>) =>
            q.call("PUT", `/v1/teams/${a.teamId}/quotas`, {
              json: { running_sandboxes: 10 },
              headers: auth,
            });
          expect((await put(a.auth)).status).toBe(403);
          const admin = await q.newUser();
          await store.users.makeAdminTeam(admin.teamId);
          const set = await put(admin.auth);
          expect(set.status).toBe(200);
          expect(await set.json()).toMatchObject({ running_sandboxes: 10, vcpus: 4 });
          expect((await create()).status).toBe(503);
        } finally {
          await q.cleanup();
        }
      });

      it("an exec stream past the team's quota is refused before the upgrade, naming the limit", async () => {
        const q = await startTestServer(engine, { WRENN_TEAM_EXEC_STREAMS: "0" });
        const http = await listenApp(
          q.app,
          { ...q.config, port: 0 },
          pino({ level: "silent" }),
          q.upgrade,
        );
        try {
          const user = await q.newUser();
          const key = await (async () => {
            const res = await q.call("POST", "/v1/api-keys", {
              json: { name: "k" },
              headers: user.auth,
            });
            return ((await res.json()) as { key: string }).key;
          })();
          const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
            const ws = new WebSocket(
              `${http.url.replace(/^http/, "ws")}/v1/sandboxes/${newId()}/exec/stream`,
              {
                headers: { "x-api-key": key },
              },
            );
            ws.once("open", () => reject(new Error("the upgrade was accepted")));
            ws.once("error", () => {});
            ws.once("unexpected-response", (_req, res) => {
              let body = "";
              res.on("data", (d: Buffer) => {
                body += d.toString();
              });
              res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
            });
          });
          expect(refused.status).toBe(403);
          expect(JSON.parse(refused.body)).toMatchObject({
            code: "permission_denied",
            limit: "exec_streams",
          });
        } finally {
          await http.close();
          await q.cleanup();
        }
      });

      it("rate-limits creates per team with 429 and Retry-After", async () => {
        const r = await startTestServer(engine, { WRENN_RATE_CREATE_TEAM_PER_MIN: "2" });
        try {
          const user = await r.newUser();
          const res = await r.call("POST", "/v1/api-keys", {
            json: { name: "k" },
            headers: user.auth,
          });
          const key = { "x-api-key": ((await res.json()) as { key: string }).key };
          const create = () => r.call("POST", "/v1/sandboxes", { json: {}, headers: key });
          expect((await create()).status).toBe(503);
          expect((await create()).status).toBe(503);
          const limited = await create();
          expect(limited.status).toBe(429);
          expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
          expect(await limited.json()).toMatchObject({ code: "resource_exhausted" });
        } finally {
          await r.cleanup();
        }
      });

      it("stream tickets: single-use, for one sandbox; an API key in the URL is refused", async () => {
        const a = await server.newUser();
        const keyA = await apiKey(a.auth);
        const store = new Store(server.database.handle.db, server.database.handle.dialect);
        const ids: string[] = [];
        for (let i = 0; i < 2; i++) {
          const id = newId();
          ids.push(id);
          await store.sandboxes.insert(sandboxRow(a.teamId, { id }));
        }
        const watch = (id: string, query: string) =>
          server.call("GET", `/v1/sandboxes/${id}/files/watch?path=/tmp&${query}`);
        expect((await watch(ids[0] ?? "", `api_key=${keyA["x-api-key"]}`)).status).toBe(401);
        const ticket = async () => {
          const res = await server.call("POST", `/v1/sandboxes/${ids[0]}/ticket`, {
            headers: keyA,
          });
          expect(res.status).toBe(201);
          return ((await res.json()) as { ticket: string }).ticket;
        };
        // Another sandbox's ticket does not open this one (and is spent trying).
        expect((await watch(ids[1] ?? "", `ticket=${await ticket()}`)).status).toBe(401);
        const good = await ticket();
        // Past authentication, the stream needs the agent this server lacks: 503, not 401.
        expect((await watch(ids[0] ?? "", `ticket=${good}`)).status).toBe(503);
        expect((await watch(ids[0] ?? "", `ticket=${good}`)).status).toBe(401);
        const other = await server.newUser();
        const res = await server.call("POST", `/v1/sandboxes/${ids[0]}/ticket`, {
          headers: await apiKey(other.auth),
        });
        expect(res.status).toBe(404);
      });

      it("logout and a password change revoke login tokens", async () => {
        const user = await server.newUser();
        const whoami = (auth: Record<string, string>) =>
          server.call("GET", "/v1/auth/whoami", { headers: auth });
        expect((await whoami(user.auth)).status).toBe(200);
        expect((await server.call("POST", "/v1/auth/logout", { headers: user.auth })).status).toBe(
          204,
        );
        expect((await whoami(user.auth)).status).toBe(401);

        const login = async (password: string) => {
          const res = await server.call("POST", "/v1/auth/login", {
            json: { email: user.email, password },
          });
          const { token } = (await res.json()) as { token: string };
          return { authorization: `Bearer ${token}` };
        };
        const fresh = await login(user.password);
        expect((await whoami(fresh)).status).toBe(200);
        const changed = await server.call("POST", "/v1/auth/password", {
          headers: fresh,
          json: { current_password: user.password, new_password: "a new long password" },
        });
        expect(changed.status).toBe(204);
        expect((await whoami(fresh)).status).toBe(401);
        expect((await whoami(await login("a new long password"))).status).toBe(200);
      });
    },
  );
}
