import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId, type SandboxRecord, type SandboxState, Store } from "../src/db/index.js";
import { startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";

// The sandbox routes that need no agent (auth, validation, team scoping, listing and paging),
// over rows written straight into the database. Lifecycle calls against a real agent come with
// the single-host integration suite; without an agent they must answer 503, not fail.

for (const engine of testEngines()) {
  describe.skipIf(engine.skipReason)(
    `sandbox routes without an agent on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    () => {
      let server: TestServer;
      let keyA: Record<string, string>;
      let keyB: Record<string, string>;
      const mine: SandboxRecord[] = [];
      let theirs: SandboxRecord;

      async function apiKey(auth: Record<string, string>): Promise<Record<string, string>> {
        const res = await server.call("POST", "/v1/api-keys", {
          json: { name: "k" },
          headers: auth,
        });
        return { "x-api-key": ((await res.json()) as { key: string }).key };
      }

      function row(teamId: string, i: number, state: SandboxState): SandboxRecord {
        const at = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
        return {
          id: newId(),
          teamId,
          hostId: null,
          template: "base",
          runtime: "namespace",
          snapshotId: null,
          state,
          vcpus: 1,
          memoryMb: 512,
          diskSizeMb: 1024,
          timeoutSec: 0,
          metadata: { i: String(i), "team name": "a&b=c" },
          createdAt: at,
          updatedAt: at,
          lastActiveAt: at,
          stoppedAt: state === "stopped" ? at : null,
          publicTraffic: true,
          autoResume: false,
        };
      }

      beforeAll(async () => {
        server = await startTestServer(engine);
        const a = await server.newUser();
        const b = await server.newUser();
        keyA = await apiKey(a.auth);
        keyB = await apiKey(b.auth);
        const store = new Store(server.database.handle.db, server.database.handle.dialect);
        const states: SandboxState[] = ["running", "paused", "running", "stopped", "running"];
        for (const [i, state] of states.entries())
          mine.push(await store.sandboxes.insert(row(a.teamId, i, state)));
        theirs = await store.sandboxes.insert(row(b.teamId, 0, "running"));
      });
      afterAll(async () => {
        await server?.cleanup();
      });

      const list = async (query: string, headers = keyA) => {
        const res = await server.call("GET", `/v1/sandboxes${query}`, { headers });
        return {
          res,
          body: (await res.json()) as { sandboxes: { id: string }[]; next_cursor: string | null },
        };
      };

      it("need a valid X-API-Key", async () => {
        const attempts: Record<string, string>[] = [
          {},
          { "x-api-key": "wrn_nope" },
          { "x-api-key": "garbage" },
        ];
        for (const headers of attempts) {
          const res = await server.call("GET", "/v1/sandboxes", { headers });
          expect(res.status).toBe(401);
          expect(await res.json()).toMatchObject({ code: "unauthenticated" });
        }
      });

      it("list the team's live sandboxes in creation order, paged", async () => {
        const live = mine.filter((s) => s.state !== "stopped").map((s) => s.id);
        const all = await list("");
        expect(all.res.status).toBe(200);
        expect(all.body.sandboxes.map((s) => s.id)).toEqual(live);
        expect(all.body.next_cursor).toBeNull();

        const seen: string[] = [];
        let cursor: string | null = null;
        do {
          const page: Awaited<ReturnType<typeof list>> = await list(
            `?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
          );
          seen.push(...page.body.sandboxes.map((s) => s.id));
          cursor = page.body.next_cursor;
        } while (cursor);
        expect(seen).toEqual(live);
      });

      it("filter by state and URL-encoded metadata", async () => {
        const stopped = await list("?state=stopped");
        expect(stopped.body.sandboxes.map((s) => s.id)).toEqual([mine[3]?.id]);
        const two = await list("?state=running,paused&limit=10");
        expect(two.body.sandboxes).toHaveLength(4);
        const query = new URLSearchParams({ i: "2", "team name": "a&b=c" }).toString();
        const byMeta = await list(`?metadata=${encodeURIComponent(query)}`);
        expect(byMeta.body.sandboxes.map((s) => s.id)).toEqual([mine[2]?.id]);
      });

      it("reject bad list parameters with 400", async () => {
        for (const q of [
          "?limit=0",
          "?limit=abc",
          "?limit=5000",
          "?state=bogus",
          "?cursor=garbage",
          "?metadata=a%3D%2500",
        ]) {
          const { res, body } = await list(q);
          expect(res.status, q).toBe(400);
          expect(body).toMatchObject({ code: "invalid_argument" });
        }
      });

      it("refuse a query whose percent-encoding is not UTF-8 rather than use it undecoded", async () => {
        // Undecoded, `%FF` became part of a file name (`PUT ?path=/tmp/%FF` wrote "/tmp/%FF").
        const id = mine[0]?.id;
        for (const [path, name] of [
          ["/v1/sandboxes?metadata=k%3D%FF", "metadata"],
          [`/v1/sandboxes/${id}/files?path=/tmp/%FF%FE`, "path"],
          [`/v1/sandboxes/${id}/files/list?path=/tmp/bad%ED%A0%80`, "path"],
          [`/v1/sandboxes/${id}/files?x=1&path=/tmp/%E0%A4%A`, "path"],
        ] as const) {
          const res = await server.call("GET", path, { headers: keyA });
          expect(res.status, path).toBe(400);
          expect(await res.json()).toEqual({
            code: "invalid_argument",
            message: `query parameter "${name}": malformed percent-encoding (it must encode UTF-8)`,
          });
        }
        // Well-formed UTF-8, and a literal '%' sent as %25, still pass.
        expect((await list("?metadata=k%3D%C3%A9%2525")).res.status).toBe(200);
      });

      it("get one sandbox; another team's id is 404 exactly like a missing one", async () => {
        const own = await server.call("GET", `/v1/sandboxes/${mine[0]?.id}`, { headers: keyA });
        expect(own.status).toBe(200);
        expect(await own.json()).toEqual({
          id: mine[0]?.id,
          template: "base",
          state: "running",
          host_id: null,
          runtime: "namespace",
          vcpus: 1,
          memory_mb: 512,
          disk_size_mb: 1024,
          timeout_sec: 0,
          metadata: { i: "0", "team name": "a&b=c" },
          created_at: mine[0]?.createdAt,
          updated_at: mine[0]?.updatedAt,
          last_active_at: mine[0]?.lastActiveAt,
          stopped_at: null,
          allow_public_traffic: true,
          auto_resume: false,
          // A row written without a policy reads as open.
          network: { allow_internet_access: true, allow_out: [], deny_out: [] },
          // Its ports are public: no token needed.
          traffic_access_token: null,
        });
        for (const [id, headers] of [
          [theirs.id, keyA],
          [mine[0]?.id, keyB],
          [newId(), keyA],
          ["..%2F..%2Fetc", keyA],
        ] as const) {
          for (const [method, path] of [
            ["GET", `/v1/sandboxes/${id}`],
            ["DELETE", `/v1/sandboxes/${id}`],
            ["POST", `/v1/sandboxes/${id}/pause`],
            ["POST", `/v1/sandboxes/${id}/resume`],
            ["POST", `/v1/sandboxes/${id}/ping`],
          ]) {
            const res = await server.call(method as string, path as string, { headers });
            expect(res.status, `${method} ${path}`).toBe(404);
            expect(await res.json()).toMatchObject({ code: "not_found" });
          }
        }
      });

      it("validate create bodies, naming the field", async () => {
        const cases: [unknown, string][] = [
          [{ vcpus: "two" }, "vcpus"],
          [{ vcpus: 0 }, "vcpus"],
          [{ memory_mb: 1.5 }, "memory_mb"],
          [{ template: "../etc" }, "template"],
          [{ template: "a", snapshot: "b" }, "snapshot"],
          [{ envs: { "BAD-NAME": "x" } }, "envs"],
          [{ metadata: { k: 1 } }, "metadata"],
          [{ timeout_sec: -1 }, "timeout_sec"],
          [[], "body"],
        ];
        for (const [json, field] of cases) {
          const res = await server.call("POST", "/v1/sandboxes", { json, headers: keyA });
          expect(res.status, JSON.stringify(json)).toBe(400);
          const body = (await res.json()) as { code: string; message: string };
          expect(body.code).toBe("invalid_argument");
          expect(body.message).toContain(field);
        }
      });

      it("say what is wrong with a bad metadata or envs key, and do not echo a long one whole", async () => {
        const cases: [unknown, string][] = [
          [{ envs: { "A B": "x" } }, "envs.A B: keys must be environment variable names"],
          [
            { metadata: { ["k".repeat(100_000)]: "v" } },
            `metadata.${"k".repeat(64)}…: Too big: expected string to have <=64 characters`,
          ],
          [{ metadata: { "a\u0000b": "v" } }, "keys must not contain control characters"],
        ];
        for (const [json, message] of cases) {
          const res = await server.call("POST", "/v1/sandboxes", { json, headers: keyA });
          expect(res.status).toBe(400);
          const body = (await res.json()) as { code: string; message: string };
          expect(body.code).toBe("invalid_argument");
          expect(body.message).toContain(message);
          expect(body.message.length).toBeLessThan(300);
        }
      });

      it("snapshots: listed per team, validated, 404 for strangers, 503 without an agent", async () => {
        const store = new Store(server.database.handle.db, server.database.handle.dialect);
        const own = mine[0] as SandboxRecord;
        const snapshot = {
          id: newId(),
          teamId: own.teamId,
          name: "py",
          sourceSandboxId: own.id,
          hostId: null,
          baseTemplate: "base",
          vcpus: 2,
          memoryMb: 1024,
          diskSizeMb: 2048,
          createdAt: own.createdAt,
        };
        await store.templates.insert(snapshot);
        const listed = await server.call("GET", "/v1/snapshots", { headers: keyA });
        expect(await listed.json()).toEqual({
          snapshots: [
            {
              id: snapshot.id,
              name: "py",
              base_template: "base",
              source_sandbox_id: own.id,
              vcpus: 2,
              memory_mb: 1024,
              disk_size_mb: 2048,
              created_at: own.createdAt,
            },
          ],
        });
        expect(await (await server.call("GET", "/v1/snapshots", { headers: keyB })).json()).toEqual(
          { snapshots: [] },
        );

        const post = (json: unknown, headers = keyA) =>
          server.call("POST", "/v1/snapshots", { json, headers });
        expect((await post({ sandbox_id: own.id, name: ".hidden" })).status).toBe(400);
        expect((await post({ name: "x" })).status).toBe(400);
        expect((await post({ sandbox_id: own.id, name: "x" }, keyB)).status).toBe(404);
        expect((await post({ sandbox_id: own.id, name: "py" })).status).toBe(409);
        expect((await post({ sandbox_id: own.id, name: "fresh" })).status).toBe(503);
        // By name or id, only in the owning team.
        expect((await server.call("DELETE", "/v1/snapshots/py", { headers: keyB })).status).toBe(
          404,
        );
        expect(
          (await server.call("DELETE", `/v1/snapshots/${snapshot.id}`, { headers: keyB })).status,
        ).toBe(404);
        // No host holds a copy of a snapshot made by hand: deleting it is only the row.
        expect((await server.call("DELETE", "/v1/snapshots/py", { headers: keyA })).status).toBe(
          204,
        );
        const fromSnapshot = await server.call("POST", "/v1/sandboxes", {
          json: { snapshot: "nope" },
          headers: keyA,
        });
        expect(fromSnapshot.status).toBe(404);
      });

      it("hosts: listed for API keys and bearer tokens alike", async () => {
        const store = new Store(server.database.handle.db, server.database.handle.dialect);
        const id = newId();
        await store.hosts.upsert({
          id,
          address: "embedded",
          state: "ready",
          runtimes: ["namespace"],
          capacity: { vcpus: 2 },
          createdAt: mine[0]?.createdAt as string,
          lastSeenAt: null,
        });
        const byKey = await server.call("GET", "/v1/hosts", { headers: keyA });
        expect(await byKey.json()).toEqual({
          hosts: [
            {
              id,
              // A shared host: its address and capacity are the operator's to see.
              address: null,
              capacity: null,
              shared: true,
              team_id: null,
              hostname: null,
              version: null,
              state: "ready",
              runtimes: ["namespace"],
              runtime_details: [],
              default_runtime: null,
              usage: { sandboxes: 0, vcpus: 0, memory_mb: 0 },
              created_at: mine[0]?.createdAt,
              last_seen_at: null,
            },
          ],
        });
        const user = await server.newUser();
        expect((await server.call("GET", "/v1/hosts", { headers: user.auth })).status).toBe(200);
        expect((await server.call("GET", "/v1/hosts")).status).toBe(401);
        expect(
          (await server.call("GET", "/v1/hosts", { headers: { "x-api-key": "wrn_x" } })).status,
        ).toBe(401);
      });

      it("answer 503 for operations that need the agent", async () => {
        const create = await server.call("POST", "/v1/sandboxes", { json: {}, headers: keyA });
        expect(create.status).toBe(503);
        expect(await create.json()).toMatchObject({ code: "unavailable" });
        const pause = await server.call("POST", `/v1/sandboxes/${mine[0]?.id}/pause`, {
          headers: keyA,
        });
        expect(pause.status).toBe(503);
        const destroyed = await server.call("DELETE", `/v1/sandboxes/${mine[3]?.id}`, {
          headers: keyA,
        });
        expect(destroyed.status).toBe(404);
        // Nothing changed in the database.
        expect((await list("")).body.sandboxes.map((s) => s.id)).toHaveLength(4);
      });
    },
  );
}
