import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  isUniqueViolation,
  migrateToLatest,
  type NewTemplateRow,
  newId,
  nowIso,
  type SandboxRecord,
  Store,
} from "../src/db/index.js";
import { ServerError } from "../src/errors.js";
import { type TestDatabase, testEngines } from "./helpers/databases.js";
import { sandboxRow, templateRow } from "./helpers/rows.js";

// One suite, run on every engine: whatever passes on SQLite must pass on PostgreSQL unchanged.
for (const engine of testEngines()) {
  describe.skipIf(engine.skipReason)(
    `data layer on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    () => {
      let database: TestDatabase;
      let store: Store;
      let teamA: string;
      let teamB: string;
      const at = (ms: number) => nowIso(new Date(Date.UTC(2026, 0, 1) + ms));

      beforeAll(async () => {
        database = await engine.create();
        store = new Store(database.handle.db, database.handle.dialect);
        teamA = newId();
        teamB = newId();
        await store.users.insertTeam({ id: teamA, name: "a", createdAt: at(0) });
        await store.users.insertTeam({ id: teamB, name: "b", createdAt: at(0) });
      });
      afterAll(async () => {
        await database?.cleanup();
      });

      it("migrations run once and report nothing left to do", async () => {
        expect(database.handle.dialect).toBe(engine.name);
        expect(await migrateToLatest(database.handle.db)).toEqual([]);
      });

      it("users: unique emails, lookups, memberships and the default team", async () => {
        const user = { id: newId(), email: "ada@example.com", passwordHash: "h", createdAt: at(1) };
        await store.users.insertUser(user);
        // No login token is revoked yet.
        const stored = { ...user, tokensValidAfter: null };
        expect(await store.users.findUserByEmail("ada@example.com")).toEqual(stored);
        expect(await store.users.getUser(user.id)).toEqual(stored);
        const dup = store.users.insertUser({ ...user, id: newId() });
        await expect(dup).rejects.toSatisfy(isUniqueViolation);

        await store.users.addMember(user.id, teamB, "member", false, at(1));
        await store.users.addMember(user.id, teamA, "owner", true, at(2));
        expect(await store.users.defaultTeam(user.id)).toEqual({
          teamId: teamA,
          role: "owner",
          isDefault: true,
        });
        expect(await store.users.membership(user.id, teamB)).toEqual({
          teamId: teamB,
          role: "member",
          isDefault: false,
        });
        expect(await store.users.membership(newId(), teamB)).toBeUndefined();
      });

      it("a failed transaction leaves nothing behind", async () => {
        const id = newId();
        const failing = store.transaction(async (tx) => {
          await tx.users.insertTeam({ id, name: "doomed", createdAt: at(3) });
          throw new ServerError("internal", "boom");
        });
        await expect(failing).rejects.toThrow("boom");
        expect(await store.users.getTeam(id)).toBeUndefined();
        await store.transaction(async (tx) => {
          await tx.users.insertTeam({ id, name: "kept", createdAt: at(3) });
        });
        expect((await store.users.getTeam(id))?.name).toBe("kept");
      });

      it("api keys: found by hash, listed per team, deleted only by their team", async () => {
        const key = {
          id: newId(),
          teamId: teamA,
          name: "ci",
          keyHash: "ab".repeat(32),
          keyPrefix: "wrn_abcd",
          createdBy: null,
          createdAt: at(4),
          lastUsedAt: null,
        };
        await store.apiKeys.insert(key);
        expect(await store.apiKeys.findByHash(key.keyHash)).toEqual(key);
        expect(await store.apiKeys.list(teamA)).toEqual([key]);
        expect(await store.apiKeys.list(teamB)).toEqual([]);
        await store.apiKeys.touch(key.id, at(5));
        expect((await store.apiKeys.findByHash(key.keyHash))?.lastUsedAt).toBe(at(5));
        expect(await store.apiKeys.delete(teamB, key.id)).toBe(false);
        expect(await store.apiKeys.delete(teamA, key.id)).toBe(true);
        expect(await store.apiKeys.findByHash(key.keyHash)).toBeUndefined();
      });

      describe("sandboxes", () => {
        const made: SandboxRecord[] = [];
        const sandbox = (i: number, over: Partial<SandboxRecord> = {}): SandboxRecord => ({
          id: newId(),
          teamId: teamA,
          hostId: null,
          template: "base",
          runtime: "namespace",
          snapshotId: null,
          state: i % 2 === 0 ? "running" : "paused",
          vcpus: 1,
          memoryMb: 512,
          diskSizeMb: 1024,
          timeoutSec: 0,
          metadata: { n: String(i), even: String(i % 2 === 0) },
          // Two share a created_at, so the id breaks the tie.
          createdAt: at(100 + Math.min(i, 3)),
          updatedAt: at(100 + i),
          lastActiveAt: at(100 + i),
          stoppedAt: null,
          publicTraffic: i !== 2,
          autoResume: i === 2,
          network: {
            allowInternetAccess: i !== 3,
            allowOut: i === 4 ? ["*.example.com"] : [],
            denyOut: [],
          },
          ...over,
        });

        beforeAll(async () => {
          for (let i = 0; i < 5; i++) made.push(await store.sandboxes.insert(sandbox(i)));
          made.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
        });

        it("read back exactly as written, types included", async () => {
          const odd = sandbox(9, {
            teamId: teamB,
            metadata: { 'weird "key".$[0]': "ünï ✓ '\"", "": "empty key" },
            timeoutSec: 2_147_483_647,
            stoppedAt: at(10),
          });
          await store.sandboxes.insert(odd);
          const back = await store.sandboxes.get(teamB, odd.id);
          expect(back).toEqual(odd);
          expect(typeof back?.vcpus).toBe("number");
          expect(typeof back?.createdAt).toBe("string");
          // The public-traffic and auto-resume flags are booleans on both dialects.
          const flagged = sandbox(10, { teamId: teamB, publicTraffic: false, autoResume: true });
          await store.sandboxes.insert(flagged);
          expect(await store.sandboxes.get(teamB, flagged.id)).toEqual(flagged);
        });

        it("a read beside an open transaction never sees what it then rolls back", async () => {
          const doomed = sandbox(20);
          let opened!: () => void;
          const open = new Promise<void>((resolve) => {
            opened = resolve;
          });
          let finish!: () => void;
          const finishing = new Promise<void>((resolve) => {
            finish = resolve;
          });
          const tx = store.transaction(async (t) => {
            await t.sandboxes.insert(doomed);
            opened();
            await finishing;
            throw new ServerError("internal", "rolled back");
          });
          await open;
          // Asked while the row is written but not committed (SQLite's reads skip Kysely's
          // connection lock when they can: not while a transaction holds the connection).
          const read = store.sandboxes.get(teamA, doomed.id);
          finish();
          await expect(tx).rejects.toThrow("rolled back");
          expect(await read).toBeUndefined();
          expect(await store.sandboxes.get(teamA, doomed.id)).toBeUndefined();
        });

        it("are invisible to another team", async () => {
          const first = made[0] as SandboxRecord;
          expect(await store.sandboxes.get(teamB, first.id)).toBeUndefined();
          expect(
            await store.sandboxes.update(teamB, first.id, { state: "stopped" }, at(1)),
          ).toBeUndefined();
          expect(await store.sandboxes.delete(teamB, first.id)).toBe(false);
          expect((await store.sandboxes.getById(first.id))?.state).toBe(first.state);
        });

        it("page through in (created_at, id) order with a cursor", async () => {
          const seen: string[] = [];
          let cursor: string | undefined;
          let pages = 0;
          do {
            const page = await store.sandboxes.list({ teamId: teamA, limit: 2, cursor });
            seen.push(...page.items.map((s) => s.id));
            cursor = page.nextCursor;
            pages++;
          } while (cursor);
          expect(pages).toBe(3);
          expect(seen).toEqual(made.map((s) => s.id));
        });

        it("filter by state and by metadata key=value", async () => {
          const paused = await store.sandboxes.list({
            teamId: teamA,
            limit: 10,
            states: ["paused"],
          });
          expect(paused.items.map((s) => s.metadata.n)).toEqual(["1", "3"]);
          const even = await store.sandboxes.list({
            teamId: teamA,
            limit: 10,
            metadata: { even: "true", n: "2" },
          });
          expect(even.items.map((s) => s.metadata.n)).toEqual(["2"]);
          const weird = await store.sandboxes.list({
            teamId: teamB,
            limit: 10,
            metadata: { 'weird "key".$[0]': "ünï ✓ '\"" },
          });
          expect(weird.items).toHaveLength(1);
          const none = await store.sandboxes.list({
            teamId: teamA,
            limit: 10,
            metadata: { n: "nope" },
          });
          expect(none).toEqual({ items: [] });
        });

        it("reject a cursor the server did not issue", async () => {
          for (const cursor of ["garbage", "W10", Buffer.from('["a"]').toString("base64url")]) {
            await expect(
              store.sandboxes.list({ teamId: teamA, limit: 1, cursor }),
            ).rejects.toMatchObject({
              code: "invalid_argument",
            });
          }
        });

        it("update state and times, and list what a host holds", async () => {
          const host = newId();
          await store.hosts.upsert({
            id: host,
            address: "embedded",
            state: "ready",
            runtimes: ["namespace"],
            capacity: { vcpus: 2 },
            createdAt: at(0),
            lastSeenAt: null,
          });
          const target = made[1] as SandboxRecord;
          const updated = await store.sandboxes.update(
            teamA,
            target.id,
            { state: "stopped", hostId: host, stoppedAt: at(200) },
            at(200),
          );
          expect(updated).toMatchObject({
            state: "stopped",
            hostId: host,
            stoppedAt: at(200),
            updatedAt: at(200),
          });
          expect((await store.sandboxes.listByHost(host, ["stopped"])).map((s) => s.id)).toEqual([
            target.id,
          ]);
          expect(await store.sandboxes.listByHost(host, ["running"])).toEqual([]);
        });
      });

      it("templates: names are unique per team, not across teams", async () => {
        const template = {
          id: newId(),
          teamId: teamA,
          name: "py",
          sourceSandboxId: null,
          hostId: null,
          baseTemplate: "base",
          vcpus: 2,
          memoryMb: 1024,
          diskSizeMb: 2048,
          createdAt: at(300),
        };
        await store.templates.insert(template);
        await expect(store.templates.insert({ ...template, id: newId() })).rejects.toSatisfy(
          isUniqueViolation,
        );
        await store.templates.insert({ ...template, id: newId(), teamId: teamB });
        // Read back with the defaults of a snapshot row (0007_templates, 0008_template_size).
        const stored = {
          ...template,
          kind: "snapshot",
          version: 1,
          cacheKey: null,
          config: null,
          parentId: null,
          sizeKib: null,
          usedAt: null,
          buildLayers: null,
        };
        expect(await store.templates.getByName(teamA, "py")).toEqual(stored);
        expect(await store.templates.get(teamB, template.id)).toBeUndefined();
        expect(await store.templates.list(teamA)).toEqual([stored]);
        expect(await store.templates.delete(teamB, template.id)).toBe(false);
        expect(await store.templates.delete(teamA, template.id)).toBe(true);
      });

      it("templates: the layer cache sees layers nothing stands on, least recently used first", async () => {
        const row = (name: string, over: Partial<NewTemplateRow> = {}) =>
          templateRow(teamB, name, { createdAt: at(400), kind: "layer", ...over });
        // under ← stacked (a layer on a layer), held (a sandbox runs from it), free, older.
        const under = row("layer-under", { usedAt: at(401), sizeKib: 2_929_688 });
        const stacked = row("layer-stacked", { usedAt: at(405), parentId: under.id });
        const held = row("layer-held", { usedAt: at(402) });
        const free = row("layer-free", { usedAt: at(404), sizeKib: 7 });
        const older = row("layer-older", { usedAt: at(403) });
        const built = row("built", { kind: "template", parentId: stacked.id, buildLayers: "[]" });
        for (const r of [under, stacked, held, free, older, built]) await store.templates.insert(r);
        const sandbox = sandboxRow(teamB, {
          template: held.id,
          snapshotId: held.id,
          createdAt: at(406),
          updatedAt: at(406),
          lastActiveAt: at(406),
        });
        await store.sandboxes.insert(sandbox);
        const evictable = async () =>
          (await store.templates.evictableLayers())
            .filter((r) => r.teamId === teamB)
            .map((r) => r.name);
        expect(await evictable()).toEqual(["layer-older", "layer-free"]);
        await store.templates.touchLayer(older.id, at(409));
        expect(await evictable()).toEqual(["layer-free", "layer-older"]);
        // A stopped sandbox holds nothing; a row gone frees what it stacked on.
        await store.sandboxes.update(teamB, sandbox.id, { state: "stopped" }, at(410));
        await store.templates.delete(teamB, built.id);
        expect(await evictable()).toEqual([
          "layer-held",
          "layer-free",
          "layer-stacked",
          "layer-older",
        ]);
        // A size past 32 bits of bytes (2.8 GiB) reads back as a number on both engines.
        const sizes = (await store.templates.allLayers()).filter((l) =>
          [under.id, free.id].includes(l.id),
        );
        expect(sizes.map((l) => l.sizeKib ?? 0).sort((a, b) => a - b)).toEqual([7, 2_929_688]);
        for (const r of [stacked, under, held, free, older])
          await store.templates.delete(teamB, r.id);
      });

      it("hosts: upsert replaces, refresh tokens expire", async () => {
        const id = newId();
        const host = {
          id,
          address: "10.0.0.1:5000",
          state: "ready" as const,
          runtimes: ["namespace", "microvm"],
          capacity: { vcpus: 8, memory_mb: 16_384 },
          createdAt: at(0),
          lastSeenAt: at(1),
        };
        await store.hosts.upsert(host);
        await store.hosts.upsert({ ...host, address: "10.0.0.2:5000", createdAt: at(9) });
        expect(await store.hosts.get(id)).toMatchObject({ ...host, address: "10.0.0.2:5000" });
        await store.hosts.markSeen(id, "offline", at(2));
        expect(await store.hosts.get(id)).toMatchObject({ state: "offline", lastSeenAt: at(2) });
        expect((await store.hosts.list()).map((h) => h.id)).toContain(id);

        await store.hosts.insertRefreshToken({
          id: newId(),
          hostId: id,
          tokenHash: "cd".repeat(32),
          expiresAt: at(1000),
          createdAt: at(0),
          parentId: null,
          successorId: null,
          activatedAt: null,
        });
        expect(await store.hosts.findRefreshToken("cd".repeat(32), at(999))).toBeDefined();
        expect(await store.hosts.findRefreshToken("cd".repeat(32), at(1000))).toBeUndefined();
        await store.hosts.deleteRefreshTokens(id);
        expect(await store.hosts.findRefreshToken("cd".repeat(32), at(0))).toBeUndefined();
      });
    },
  );
}

describe("ids", () => {
  it("are lowercase alphanumeric DNS labels starting with a letter", () => {
    const ids = new Set(Array.from({ length: 500 }, newId));
    expect(ids.size).toBe(500);
    for (const id of ids) expect(id).toMatch(/^[a-z][a-z0-9]{19}$/);
  });
});
