import { homedir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

describe("loadConfig", () => {
  it("defaults to single-host: SQLite in ~/.wrenn, loopback, port 3000", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      host: "127.0.0.1",
      dataDir: join(homedir(), ".wrenn"),
      databaseUrl: undefined,
      jwtSecret: undefined,
      defaultTemplate: "base",
    });
  });

  it("reads WRENN_* and refuses nonsense with the variable's name", () => {
    const config = loadConfig({
      WRENN_PORT: "8080",
      WRENN_DATABASE_URL: "postgres://u@localhost/db",
      WRENN_DATA_DIR: "/srv/wrenn",
    });
    expect(config).toMatchObject({
      port: 8080,
      databaseUrl: "postgres://u@localhost/db",
      dataDir: "/srv/wrenn",
    });
    expect(() => loadConfig({ WRENN_PORT: "http" })).toThrow("WRENN_PORT");
    expect(() => loadConfig({ WRENN_PORT: "70000" })).toThrow("WRENN_PORT");
    expect(() => loadConfig({ WRENN_DATABASE_URL: "mysql://x" })).toThrow("WRENN_DATABASE_URL");
  });

  it("gives up on a silent host before a client's call to it times out", () => {
    const config = loadConfig({});
    // Calls to a frozen host hang until the host is given up on; Wrenn's SDK and E2B's give up
    // on a call after 60 s. The reconciler notices a stale host within one interval.
    const CLIENT_TIMEOUT_MS = 60_000;
    expect(config.hostStaleSec * 1000 + config.reconcileIntervalMs).toBeLessThan(CLIENT_TIMEOUT_MS);
    // …yet not for a heartbeat or two lost or late.
    expect(config.hostStaleSec).toBeGreaterThanOrEqual(3 * config.heartbeatSec);
  });

  it("bounds the template layer cache, 500 layers and 20 GiB unless told", () => {
    expect(loadConfig({}).layerCache).toEqual({ maxLayers: 500, maxMb: 20_480 });
    expect(
      loadConfig({ WRENN_TEMPLATE_CACHE_LAYERS: "0", WRENN_TEMPLATE_CACHE_MB: "512" }).layerCache,
    ).toEqual({ maxLayers: 0, maxMb: 512 });
    expect(() => loadConfig({ WRENN_TEMPLATE_CACHE_LAYERS: "-1" })).toThrow(
      "WRENN_TEMPLATE_CACHE_LAYERS",
    );
    expect(() => loadConfig({ WRENN_TEMPLATE_CACHE_MB: "lots" })).toThrow(
      "WRENN_TEMPLATE_CACHE_MB",
    );
  });
});
