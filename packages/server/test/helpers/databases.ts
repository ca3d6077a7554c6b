import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { inject } from "vitest";
import { type DbHandle, type DialectName, migrateToLatest, openDb } from "../../src/db/index.js";

/** A migrated, empty database of one engine, and how to throw it away. */
export interface TestDatabase {
  handle: DbHandle;
  /** The options that open it again (e.g. to test a restart). */
  options: { databaseUrl?: string; sqliteFile?: string };
  cleanup(): Promise<void>;
}

export interface TestEngine {
  name: DialectName;
  /** Why this engine does not run, when it does not. */
  skipReason: string | undefined;
  create(): Promise<TestDatabase>;
}

async function createSqlite(): Promise<TestDatabase> {
  const dir = mkdtempSync(join(tmpdir(), "wrenn-sqlite-"));
  const options = { sqliteFile: join(dir, "wrenn.db") };
  const handle = openDb(options);
  await migrateToLatest(handle.db);
  return {
    handle,
    options,
    async cleanup() {
      await handle.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function adminQuery(adminUrl: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

async function createPostgres(adminUrl: string): Promise<TestDatabase> {
  // A fresh database per suite on the one cluster the global setup started.
  const name = `wrenn_test_${randomBytes(6).toString("hex")}`;
  await adminQuery(adminUrl, `create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const options = { databaseUrl: url.toString() };
  const handle = openDb(options);
  await migrateToLatest(handle.db);
  return {
    handle,
    options,
    async cleanup() {
      await handle.close();
      await adminQuery(adminUrl, `drop database if exists ${name} with (force)`);
    },
  };
}

/** Both engines; loop a suite over them so the same tests run on each. */
export function testEngines(): TestEngine[] {
  const adminUrl = inject("postgresAdminUrl");
  return [
    { name: "sqlite", skipReason: undefined, create: createSqlite },
    {
      name: "postgres",
      skipReason: adminUrl ? undefined : "WRENN_TEST_SKIP_POSTGRES=1",
      create: () => {
        if (!adminUrl) throw new Error("PostgreSQL is not available in this run");
        return createPostgres(adminUrl);
      },
    },
  ];
}
