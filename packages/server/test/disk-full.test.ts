import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, type ServerApp } from "../src/api/index.js";
import { loadConfig } from "../src/config/index.js";
import { type DbHandle, migrateToLatest, openDb } from "../src/db/index.js";

// Issue #13, disk full: the data dir on a small loop-mounted file system made here. A full disk
// answers 507 insufficient_storage (not a 500), and the server works again once space returns.
// Needs root (mount) and e2fsprogs.

const root = process.getuid?.() === 0;

describe.skipIf(!root)("disk full on the data dir", () => {
  let base: string;
  let mnt: string;
  let db: DbHandle;
  let server: ServerApp;
  let mounted = false;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), "wrenn-diskfull-"));
    mnt = join(base, "mnt");
    execFileSync("mkdir", [mnt]);
    execFileSync("truncate", ["-s", "16M", join(base, "fs.img")]);
    execFileSync("mkfs.ext4", ["-q", "-F", "-m", "0", join(base, "fs.img")]);
    execFileSync("mount", ["-o", "loop", join(base, "fs.img"), mnt]);
    mounted = true;
    db = openDb({ sqliteFile: join(mnt, "wrenn.db") });
    await migrateToLatest(db.db);
    server = await createApp({ db, config: loadConfig({ WRENN_DATA_DIR: mnt }) });
  });
  afterAll(async () => {
    await db?.close();
    if (mounted) execFileSync("umount", [mnt]);
    rmSync(base, { recursive: true, force: true });
  });

  const signup = (email: string) =>
    server.app.request("/v1/auth/signup", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password: "long enough" }),
    });

  it("answers 507 while full and recovers when space returns", async () => {
    expect((await signup("before@example.com")).status).toBe(201);
    const filler = join(mnt, "filler");
    // Fill every block: write until ENOSPC.
    try {
      execFileSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=64k"], { stdio: "ignore" });
    } catch {}
    let full: Response | undefined;
    for (let i = 0; i < 50; i++) {
      full = await signup(`full${i}-${"x".repeat(200)}@example.com`);
      if (full.status !== 201) break;
    }
    expect(full?.status).toBe(507);
    expect(await full?.json()).toMatchObject({ code: "insufficient_storage" });
    await unlink(filler);
    await writeFile(join(mnt, "probe"), "ok");
    expect((await signup("after@example.com")).status).toBe(201);
  });
});
