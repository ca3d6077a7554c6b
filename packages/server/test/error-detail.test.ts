import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, type ServerApp } from "../src/api/index.js";
import { loadConfig } from "../src/config/index.js";
import { newId, Store } from "../src/db/index.js";
import type { AgentClient } from "../src/service/index.js";
import { newTeamKey } from "./helpers/app.js";
import { type TestDatabase, testEngines } from "./helpers/databases.js";
import { sandboxRow } from "./helpers/rows.js";

// Issue #13 findings 4 and 5: what the host says about itself (paths, envd's log) reaches the
// server log with the request id, never the client; bodies from envd are read up to a cap.
// The agent is a fake here (a Connect client that throws, and an HTTP server standing in for
// the agent's envd proxy): the subject is the server's error path, not the agent.

const HOST_PATH = "/var/lib/wrenn/agent/sandboxes/abc/storage/rootfs";
const sqlite = testEngines().find((e) => e.name === "sqlite");

describe.skipIf(!sqlite)("errors from the host", () => {
  let database: TestDatabase;
  let server: ServerApp;
  let fakeProxy: Server;
  let dataDir: string;
  const logged: string[] = [];
  let key: Record<string, string>;
  let teamId: string;

  beforeAll(async () => {
    fakeProxy = createServer((req, res) => {
      // A 2 MiB error body naming a host path, as a broken proxy or envd log excerpt would.
      const huge = JSON.stringify({
        code: "internal",
        message: `${HOST_PATH} ${"x".repeat(2 ** 21)}`,
      });
      req.resume();
      res.writeHead(req.url?.includes("small") ? 500 : 502, { "content-type": "application/json" });
      res.end(
        req.url?.includes("small") ? JSON.stringify({ message: `EIO at ${HOST_PATH}` }) : huge,
      );
    });
    await new Promise<void>((r) => fakeProxy.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(fakeProxy.address() as AddressInfo).port}`;
    const fakeAgent = {
      pauseSandbox: async () => {
        throw new ConnectError(`freeze ${HOST_PATH}: device busy; envd.log: boom`, Code.Internal);
      },
    } as unknown as AgentClient;
    dataDir = mkdtempSync(join(tmpdir(), "wrenn-errors-"));
    database = await (sqlite as NonNullable<typeof sqlite>).create();
    const sink = new Writable({
      write(chunk, _enc, done) {
        logged.push(chunk.toString());
        done();
      },
    });
    server = await createApp({
      db: database.handle,
      config: loadConfig({ WRENN_DATA_DIR: dataDir }),
      logger: pino({ level: "info" }, sink),
      localHost: { hostId: "fake-host", client: fakeAgent, url },
    });
    await new Store(database.handle.db, database.handle.dialect).hosts.upsert({
      id: "fake-host",
      address: url,
      state: "ready",
      teamId: null,
      hostname: "fake",
      version: "0",
      defaultRuntime: "namespace",
      runtimes: ["namespace"],
      capacity: { vcpus: 4, memory_mb: 4096, disk_mb: 10_000, max_sandboxes: 10 },
      createdAt: new Date().toISOString(),
      lastSeenAt: new Date().toISOString(),
    });
    key = await newTeamKey(server.app);
    const who = await server.app.request("/v1/auth/whoami", { headers: key });
    teamId = ((await who.json()) as { team_id: string }).team_id;
  });
  afterAll(async () => {
    await new Promise((r) => fakeProxy?.close(r));
    await database?.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function runningSandbox(): Promise<string> {
    const store = new Store(database.handle.db, database.handle.dialect);
    const id = newId();
    await store.sandboxes.insert(sandboxRow(teamId, { id, hostId: "fake-host" }));
    return id;
  }

  it("an agent's internal message goes to the log with the request id, not to the client", async () => {
    const id = await runningSandbox();
    const res = await server.app.request(`/v1/sandboxes/${id}/pause`, {
      method: "POST",
      headers: key,
    });
    expect(res.status).toBe(500);
    const requestId = res.headers.get("x-request-id");
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("internal");
    expect(body.message).not.toContain("/var/lib");
    expect(body.message).not.toContain("envd.log");
    expect(body.message).toContain(String(requestId));
    expect(logged.some((l) => l.includes(HOST_PATH) && l.includes(String(requestId)))).toBe(true);
  });

  it("an envd error body is read up to a cap and its host detail stays in the log", async () => {
    const id = await runningSandbox();
    for (const path of ["/home/user/big", "/home/user/small"]) {
      const res = await server.app.request(
        `/v1/sandboxes/${id}/files?path=${encodeURIComponent(path)}`,
        {
          method: "PUT",
          headers: { ...key, "content-type": "application/octet-stream" },
          body: "hi",
        },
      );
      expect(res.status).toBeGreaterThanOrEqual(500);
      const body = (await res.json()) as { message: string };
      expect(body.message).not.toContain("/var/lib");
      expect(body.message.length).toBeLessThan(500);
    }
  });
});
