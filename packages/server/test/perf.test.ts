import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import SqliteDatabase from "better-sqlite3";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AppEnv } from "../src/api/env.js";
import { createApp, type ServerApp } from "../src/api/index.js";
import { requestIds } from "../src/api/middleware.js";
import { newId, nowIso, Store } from "../src/db/index.js";
import { API_KEY_CACHE_TTL_MS } from "../src/service/api-keys.js";
import { startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";

// The hot path of `GET /v1/sandboxes/{id}`: API keys resolved from a short-lived cache that a
// delete empties at once, queries compiled once and run with fresh parameters, and no write per
// read. A second app over the same database stands in for another server process.

for (const engine of testEngines()) {
  describe.skipIf(engine.skipReason)(
    `request hot path on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    () => {
      let server: TestServer;
      let other: ServerApp;
      let store: Store;

      beforeAll(async () => {
        server = await startTestServer(engine);
        other = await createApp({ db: server.database.handle, config: server.config });
        store = new Store(server.database.handle.db, server.database.handle.dialect);
      });
      afterAll(async () => {
        await server?.cleanup();
      });

      const newKey = async (auth: Record<string, string>, name = "k") => {
        const res = await server.call("POST", "/v1/api-keys", { json: { name }, headers: auth });
        expect(res.status).toBe(201);
        return (await res.json()) as { id: string; key: string };
      };
      const insertSandbox = async (teamId: string) => {
        const now = nowIso();
        return store.sandboxes.insert({
          id: newId(),
          teamId,
          hostId: null,
          template: "t",
          snapshotId: null,
          state: "running",
          vcpus: 1,
          memoryMb: 256,
          diskSizeMb: 128,
          timeoutSec: 0,
          metadata: { owner: teamId },
          createdAt: now,
          updatedAt: now,
          lastActiveAt: now,
          stoppedAt: null,
        });
      };
      const get = (app: ServerApp, path: string, key: string) =>
        app.app.request(path, { headers: { "x-api-key": key } });

      it("answers whoami for an API key and for a bearer token, and 401 for anything else", async () => {
        const user = await server.newUser();
        const { id, key } = await newKey(user.auth, "laptop");
        const team = await store.users.getTeam(user.teamId);
        const byKey = await get(server, "/v1/auth/whoami", key);
        expect(byKey.status).toBe(200);
        expect(await byKey.json()).toEqual({
          team_id: user.teamId,
          team_name: team?.name,
          api_key_id: id,
          api_key_name: "laptop",
        });
        const byToken = await server.call("GET", "/v1/auth/whoami", { headers: user.auth });
        expect(await byToken.json()).toEqual({
          team_id: user.teamId,
          team_name: team?.name,
          user_id: user.userId,
          email: user.email,
        });
        const refused: Record<string, string>[] = [
          {},
          { "x-api-key": "wrn_garbage" },
          { "x-api-key": "nope" },
          { authorization: "Bearer a.b.c" },
        ];
        for (const headers of refused) {
          const res = await server.call("GET", "/v1/auth/whoami", { headers });
          expect(res.status).toBe(401);
          expect(((await res.json()) as { code: string }).code).toBe("unauthenticated");
        }
      });

      it("runs each compiled query with its own parameters, team-scoped", async () => {
        const a = await server.newUser();
        const b = await server.newUser();
        const keyA = (await newKey(a.auth)).key;
        const keyB = (await newKey(b.auth)).key;
        const [sa, sb] = [await insertSandbox(a.teamId), await insertSandbox(b.teamId)];
        for (let i = 0; i < 3; i++) {
          const resA = await get(server, `/v1/sandboxes/${sa.id}`, keyA);
          expect(await resA.json()).toMatchObject({ id: sa.id, metadata: { owner: a.teamId } });
          const resB = await get(server, `/v1/sandboxes/${sb.id}`, keyB);
          expect(await resB.json()).toMatchObject({ id: sb.id, metadata: { owner: b.teamId } });
          expect((await get(server, `/v1/sandboxes/${sb.id}`, keyA)).status).toBe(404);
          expect((await get(server, `/v1/sandboxes/${sa.id}`, keyB)).status).toBe(404);
        }
      });

      it("stops a deleted API key at once here, and within the cache TTL on another server", async () => {
        expect(API_KEY_CACHE_TTL_MS).toBeLessThanOrEqual(5_000);
        const user = await server.newUser();
        const { id, key } = await newKey(user.auth);
        // Both servers have now looked the key up and hold it in their caches.
        expect((await get(server, "/v1/sandboxes", key)).status).toBe(200);
        expect((await get(other, "/v1/sandboxes", key)).status).toBe(200);

        const deleted = await server.call("DELETE", `/v1/api-keys/${id}`, { headers: user.auth });
        expect(deleted.status).toBe(204);
        const deletedAt = Date.now();
        expect((await get(server, "/v1/sandboxes", key)).status).toBe(401);

        let status = 200;
        while (status === 200 && Date.now() - deletedAt < API_KEY_CACHE_TTL_MS + 5_000) {
          status = (await get(other, "/v1/sandboxes", key)).status;
          if (status === 200) await new Promise((r) => setTimeout(r, 100));
        }
        expect(status).toBe(401);
      }, 20_000);

      it.skipIf(engine.name !== "sqlite")("reads a sandbox without writing", async () => {
        const user = await server.newUser();
        const { key } = await newKey(user.auth);
        const sandbox = await insertSandbox(user.teamId);
        // The first use records the key's last use (a write, at most once a minute).
        expect((await get(server, `/v1/sandboxes/${sandbox.id}`, key)).status).toBe(200);
        // data_version changes when another connection commits: a second connection watches.
        const file = server.database.options.sqliteFile as string;
        const watcher = new SqliteDatabase(file, { readonly: true });
        try {
          const version = () => watcher.pragma("data_version", { simple: true });
          const before = version();
          for (let i = 0; i < 50; i++) {
            expect((await get(server, `/v1/sandboxes/${sandbox.id}`, key)).status).toBe(200);
          }
          expect(version()).toBe(before);
        } finally {
          watcher.close();
        }
      });
    },
  );
}

describe("request ids", () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  const app = new Hono<AppEnv>();
  app.use(requestIds());
  app.get("/id", (c) => c.json({ id: c.get("requestId") }));
  app.get("/fail", () => {
    throw new Error("boom");
  });
  app.onError((_err, c) => c.json({ code: "internal" }, 500));

  const check = async (
    fetchId: (headers: Record<string, string>) => Response | Promise<Response>,
  ) => {
    const own = await fetchId({ "x-request-id": "client-id_1=" });
    expect(own.headers.get("x-request-id")).toBe("client-id_1=");
    expect(await own.json()).toEqual({ id: "client-id_1=" });
    const others: Record<string, string>[] = [{}, { "x-request-id": "not tame!" }];
    for (const headers of others) {
      const made = await fetchId(headers);
      const id = made.headers.get("x-request-id");
      expect(id).toMatch(UUID);
      expect(await made.json()).toEqual({ id });
    }
  };

  it("names each request and answers with the name, in-process", async () => {
    await check((headers) => app.request("/id", { headers }));
    expect((await app.request("/fail")).headers.get("x-request-id")).toMatch(UUID);
  });

  it("names each request and answers with the name over Node HTTP, errors included", async () => {
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      await check((headers) => fetch(`${url}/id`, { headers }));
      const failed = await fetch(`${url}/fail`);
      expect(failed.status).toBe(500);
      expect(failed.headers.get("x-request-id")).toMatch(UUID);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
