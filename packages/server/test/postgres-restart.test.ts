import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, type ServerApp } from "../src/api/index.js";
import { loadConfig } from "../src/config/index.js";
import { type DbHandle, migrateToLatest, openDb } from "../src/db/index.js";
import { newTeamKey } from "./helpers/app.js";
import {
  postgresBinDir,
  startThrowawayPostgres,
  type ThrowawayPostgres,
} from "./helpers/postgres-cluster.js";

// Issue #13, database faults: PostgreSQL (a cluster of this test's own, so the suite's shared one
// is untouched) is stopped and started again while requests keep coming. While it is down every
// request answers 503 unavailable (with Retry-After), none hangs or answers 500; once it is back
// the same server answers 200 again, without a restart.

const bin = postgresBinDir();
const skip =
  process.env.WRENN_TEST_SKIP_POSTGRES === "1"
    ? "WRENN_TEST_SKIP_POSTGRES=1"
    : !bin
      ? "PostgreSQL is not installed (apt-get install -y postgresql)"
      : undefined;

describe.skipIf(skip)(
  `PostgreSQL restarted under load${skip ? ` (skipped: ${skip})` : ""}`,
  { timeout: 120_000 },
  () => {
    const dataDir = mkdtempSync(join(tmpdir(), "wrenn-pg-restart-"));
    let cluster: ThrowawayPostgres;
    let db: DbHandle;
    let server: ServerApp;
    let key: Record<string, string>;

    beforeAll(async () => {
      cluster = startThrowawayPostgres(bin as string);
      db = openDb({ databaseUrl: cluster.url });
      await migrateToLatest(db.db);
      server = await createApp({ db, config: loadConfig({ WRENN_DATA_DIR: dataDir }) });
      key = await newTeamKey(server.app);
    }, 60_000);
    afterAll(async () => {
      await db?.close();
      cluster?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    /** Requests in a loop (8 at a time) until `stop` resolves; every status seen, by count. */
    async function load(stop: Promise<void>) {
      const statuses = new Map<number, number>();
      let done = false;
      stop.then(() => {
        done = true;
      });
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (!done) {
            const res = await server.app.request("/v1/sandboxes", { headers: key });
            if (res.status === 503) {
              expect(await res.json()).toMatchObject({ code: "unavailable" });
              expect(res.headers.get("retry-after")).toBe("1");
            } else await res.arrayBuffer();
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          }
        }),
      );
      return statuses;
    }

    it("answers 503 while it is down and 200 again once it is back", async () => {
      const before = await load(new Promise((resolve) => setTimeout(resolve, 500)));
      expect([...before.keys()]).toEqual([200]);

      cluster.down();
      const down = await load(new Promise((resolve) => setTimeout(resolve, 2_000)));
      expect([...down.keys()]).toEqual([503]);

      cluster.up();
      // The pool opens new connections by itself: the first requests after the start may still
      // meet a connection cut by the stop, then every one succeeds.
      const after = await load(new Promise((resolve) => setTimeout(resolve, 1_500)));
      expect([...after.keys()].every((s) => s === 200 || s === 503)).toBe(true);
      const settled = await load(new Promise((resolve) => setTimeout(resolve, 500)));
      expect([...settled.keys()]).toEqual([200]);
    });

    it("fails fast under load while it restarts (nothing answers 500 or hangs)", async () => {
      const restart = (async () => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        cluster.down();
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        cluster.up();
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      })();
      const statuses = await load(restart);
      expect([...statuses.keys()].every((s) => s === 200 || s === 503)).toBe(true);
      expect(statuses.get(503) ?? 0).toBeGreaterThan(0);
      const res = await server.app.request("/v1/sandboxes", { headers: key });
      expect(res.status).toBe(200);
    });
  },
);
