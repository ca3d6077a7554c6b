import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../config/index.js";
import { migrateToLatest, openDb } from "../db/index.js";
import { createApp } from "./app.js";
import { consoleAssets } from "./console-assets.js";
import type { AppEnv } from "./env.js";

describe("the console's static assets", () => {
  let dir: string;
  const app = new Hono<AppEnv>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "wrenn-console-assets-"));
    await mkdir(join(dir, "assets"));
    await writeFile(join(dir, "index.html"), "<!doctype html><title>console</title>");
    await writeFile(join(dir, "assets", "app-1234.js"), "console.log(1)");
    await writeFile(join(dir, "..", "wrenn-console-assets-secret"), "outside");
    app.get("/v1/thing", (c) => c.json({ api: true }));
    app.use(consoleAssets(dir));
    app.notFound((c) => c.json({ code: "not_found" }, 404));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(join(dir, "..", "wrenn-console-assets-secret"), { force: true });
  });

  it("serves files, and index.html for client routes", async () => {
    const js = await app.request("/assets/app-1234.js");
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(js.headers.get("cache-control")).toContain("immutable");
    expect(await js.text()).toBe("console.log(1)");
    for (const path of ["/", "/sandboxes", "/sandboxes/abc123"]) {
      const page = await app.request(path);
      expect(page.status, path).toBe(200);
      expect(page.headers.get("cache-control")).toBe("no-cache");
      expect(await page.text()).toContain("<title>console</title>");
    }
    const head = await app.request("/", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("leaves the API, other methods, missing files and paths outside its folder alone", async () => {
    expect(await (await app.request("/v1/thing")).json()).toEqual({ api: true });
    expect((await app.request("/v1/other")).status).toBe(404);
    expect((await app.request("/", { method: "POST" })).status).toBe(404);
    expect((await app.request("/assets/missing.js")).status).toBe(404);
    const outside = await app.request("/..%2fwrenn-console-assets-secret");
    expect(await outside.text()).not.toContain("outside");
  });

  it("says how to build the console when there is none", async () => {
    const bare = new Hono<AppEnv>().use(consoleAssets(join(dir, "nothing-here")));
    const res = await bare.request("/sandboxes");
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("npm run build");
  });

  it("comes after every API route in createApp: JSON 404 and 405 answers are unchanged", async () => {
    const db = openDb({ sqliteFile: ":memory:" });
    await migrateToLatest(db.db);
    try {
      const { app: api } = await createApp({
        db,
        config: { ...loadConfig({ WRENN_DATA_DIR: dir }), jwtSecret: "x".repeat(40) },
      });
      const missing = await api.request("/v1/no-such-route");
      expect(missing.status).toBe(404);
      expect(await missing.json()).toMatchObject({ code: "not_found" });
      const wrongMethod = await api.request("/v1/sandboxes", { method: "PUT" });
      expect(wrongMethod.status).toBe(405);
      expect((await api.request("/health")).headers.get("content-type")).toMatch(/json/);
      expect((await api.request("/openapi.json")).headers.get("content-type")).toMatch(/json/);
      // A browser page shares its path with E2B's API: the page for navigations, the API else.
      const page = await api.request("/sandboxes", { headers: { accept: "text/html" } });
      expect(page.headers.get("content-type")).toMatch(/text\/html/);
      const e2b = await api.request("/sandboxes", { headers: { "x-api-key": "e2b_00" } });
      expect(e2b.status).toBe(401);
      expect(e2b.headers.get("content-type")).toMatch(/json/);
    } finally {
      await db.close();
    }
  });
});
