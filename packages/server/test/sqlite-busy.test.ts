import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, type ServerApp } from "../src/api/index.js";
import { loadConfig } from "../src/config/index.js";
import { SQLITE_BUSY_DEADLINE_MS } from "../src/db/sqlite-busy.js";
import { type TestDatabase, testEngines } from "./helpers/databases.js";

// Issue #13, database faults: another process (here a second better-sqlite3 client, as the
// `sqlite3` shell or a backup would be) holds SQLite's write lock. Writes wait for it without
// blocking the event loop (better-sqlite3 is synchronous, so a busy_timeout would), succeed
// once it is released, and fail as 503 unavailable when it is held past the deadline.

const packageDir = fileURLToPath(new URL("..", import.meta.url));
/** Longest the event loop may stall here: far below the lock's hold, so a blocked loop shows. */
const STALL_BOUND_MS = 1_000;

/** A second process that takes the write lock, holds it `holdMs`, then commits and exits. */
async function holdWriteLock(
  file: string,
  holdMs: number,
): Promise<{ child: ChildProcess; exited: Promise<unknown> }> {
  const script = `
    const db = require("better-sqlite3")(${JSON.stringify(file)});
    db.exec("BEGIN IMMEDIATE");
    console.log("locked");
    setTimeout(() => { db.exec("COMMIT"); db.close(); }, ${holdMs});
  `;
  const child = spawn(process.execPath, ["-e", script], {
    cwd: packageDir,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = once(child, "exit");
  const [chunk] = (await once(child.stdout!, "data")) as [Buffer];
  expect(chunk.toString()).toContain("locked");
  return { child, exited };
}

/** Runs `work` while measuring the longest gap between 5 ms timer ticks. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ result: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 5);
  try {
    return { result: await work(), stallMs };
  } finally {
    clearInterval(timer);
  }
}

describe("SQLite under another process's write lock", { timeout: 60_000 }, () => {
  const sqlite = testEngines().find((e) => e.name === "sqlite")!;
  const dataDir = mkdtempSync(join(tmpdir(), "wrenn-sqlite-busy-"));
  let database: TestDatabase;
  let server: ServerApp;
  let n = 0;

  let token = "";
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    server.app.request(path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  /** A plain write (no password hash in front of it): a new API key. */
  const write = async () =>
    post("/v1/api-keys", { name: `k${++n}` }, { authorization: `Bearer ${token}` });

  beforeAll(async () => {
    database = await sqlite.create();
    server = await createApp({
      db: database.handle,
      config: loadConfig({ WRENN_DATA_DIR: dataDir }),
    });
    const account = { email: "busy@example.com", password: "long enough" };
    expect((await post("/v1/auth/signup", account)).status).toBe(201);
    token = ((await (await post("/v1/auth/login", account)).json()) as { token: string }).token;
  });
  afterAll(async () => {
    await database?.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("waits for the lock without blocking the event loop, then writes", async () => {
    const holder = await holdWriteLock(database.options.sqliteFile!, 2_500);
    const { result, stallMs } = await longestStall(write);
    await holder.exited;
    expect(result.status).toBe(201);
    expect(stallMs).toBeLessThan(STALL_BOUND_MS);
  });

  it("answers 503 unavailable when the lock is held past the deadline", async () => {
    const holder = await holdWriteLock(
      database.options.sqliteFile!,
      SQLITE_BUSY_DEADLINE_MS + 3_000,
    );
    const { result, stallMs } = await longestStall(write);
    expect(result.status).toBe(503);
    expect(await result.json()).toMatchObject({ code: "unavailable" });
    expect(stallMs).toBeLessThan(STALL_BOUND_MS);
    await holder.exited;
    expect((await write()).status).toBe(201);
  });
});
