import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId, Store } from "../src/db/index.js";
import { startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";

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
        const theirs = {
          id: newId(),
          teamId: b.teamId,
          name: "secret",
          sourceSandboxId: newId(),
          hostId: null,
          baseTemplate: "base",
          vcpus: 1,
          memoryMb: 512,
          diskSizeMb: 1024,
          createdAt: new Date().toISOString(),
        };
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
    },
  );
}
