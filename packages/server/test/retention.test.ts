import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId, type SandboxState, Store } from "../src/db/index.js";
import { Reconciler } from "../src/service/index.js";
import { startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";
import { templateRow } from "./helpers/rows.js";

// What the reconciler deletes by age, nothing else: stopped rows older than WRENN_RETENTION_DAYS,
// and the results of template builds whose server stopped before they became templates.

for (const engine of testEngines()) {
  describe.skipIf(engine.skipReason)(
    `retention on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    () => {
      let server: TestServer;
      beforeAll(async () => {
        server = await startTestServer(engine);
      });
      afterAll(async () => {
        await server?.cleanup();
      });

      it("prunes stopped rows past WRENN_RETENTION_DAYS, keeps recent and live ones", async () => {
        const user = await server.newUser();
        const store = new Store(server.database.handle.db, server.database.handle.dialect);
        const day = 86_400_000;
        const row = async (state: SandboxState, stoppedDaysAgo: number | null) => {
          const id = newId();
          const at = new Date(Date.now() - 40 * day).toISOString();
          await store.sandboxes.insert({
            id,
            teamId: user.teamId,
            hostId: null,
            template: "base",
            runtime: "namespace",
            snapshotId: null,
            state,
            vcpus: 1,
            memoryMb: 512,
            diskSizeMb: 1024,
            timeoutSec: 0,
            metadata: {},
            createdAt: at,
            updatedAt: at,
            lastActiveAt: at,
            stoppedAt:
              stoppedDaysAgo === null
                ? null
                : new Date(Date.now() - stoppedDaysAgo * day).toISOString(),
          });
          return id;
        };
        const old = await row("stopped", 10);
        const recent = await row("stopped", 2);
        const paused = await row("paused", null);
        const reconciler = new Reconciler(store, server.registry, pino({ level: "silent" }), {
          retentionDays: 7,
        });
        expect((await reconciler.tick()).pruned).toBe(1);
        expect(await store.sandboxes.get(user.teamId, old)).toBeUndefined();
        expect(await store.sandboxes.get(user.teamId, recent)).toBeDefined();
        expect(await store.sandboxes.get(user.teamId, paused)).toBeDefined();
        // 0 keeps everything.
        const keeper = new Reconciler(store, server.registry, pino({ level: "silent" }), {
          retentionDays: 0,
        });
        await row("stopped", 1000);
        expect((await keeper.tick()).pruned).toBe(0);
      });

      it("deletes a build's result left unpromoted for an hour, not one under way nor any template", async () => {
        const user = await server.newUser();
        const store = new Store(server.database.handle.db, server.database.handle.dialect);
        const row = async (name: string, kind: "template" | "snapshot", minutesAgo: number) => {
          const createdAt = new Date(Date.now() - minutesAgo * 60_000).toISOString();
          return (await store.templates.insert(templateRow(user.teamId, name, { kind, createdAt })))
            .id;
        };
        // Its server stopped during the start check, an hour ago.
        const left = await row(`web@build-${newId()}`, "template", 61);
        // A start check may take its ready timeout: up to ten minutes.
        const underWay = await row(`web@build-${newId()}`, "template", 11);
        const kept = [
          underWay,
          await row("web", "template", 600),
          await row("web@v1", "template", 600),
          await row("snap", "snapshot", 600),
        ];
        const reconciler = new Reconciler(store, server.registry, pino({ level: "silent" }));
        expect((await reconciler.tick()).unfinishedBuilds).toEqual([left]);
        expect(await store.templates.get(user.teamId, left)).toBeUndefined();
        for (const id of kept) expect(await store.templates.get(user.teamId, id)).toBeDefined();
      });
    },
  );
}
