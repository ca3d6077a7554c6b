import { existsSync } from "node:fs";
import { mkdir, readFile, rmdir, statfs, writeFile } from "node:fs/promises";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Metrics } from "../src/http/metrics.js";
import { type RunningEnvd, startEnvd } from "./helpers/envd.js";

describe("envd /metrics", () => {
  let envd: RunningEnvd;

  beforeAll(async () => {
    envd = await startEnvd();
  });
  afterAll(async () => {
    await envd?.stop();
  });

  it("reports CPUs, memory and the root disk in E2B's shape", async () => {
    const res = await fetch(`${envd.baseUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const m = (await res.json()) as Metrics;
    expect(Object.keys(m).sort()).toEqual(
      [
        "ts",
        "cpu_count",
        "cpu_used_pct",
        "mem_total_mib",
        "mem_used_mib",
        "mem_total",
        "mem_used",
        "mem_cache",
        "disk_used",
        "disk_total",
      ].sort(),
    );
    for (const value of Object.values(m)) expect(Number.isFinite(value)).toBe(true);
    expect(Math.abs(m.ts - Date.now() / 1000)).toBeLessThan(60);
    expect(m.cpu_count).toBeGreaterThanOrEqual(1);
    expect(m.cpu_count).toBeLessThanOrEqual(os.cpus().length);
    expect(m.cpu_used_pct).toBeGreaterThanOrEqual(0);
    expect(m.cpu_used_pct).toBeLessThanOrEqual(100);
    expect(m.mem_total).toBeGreaterThan(0);
    expect(m.mem_total).toBeLessThanOrEqual(os.totalmem());
    expect(m.mem_used).toBeGreaterThan(0);
    expect(m.mem_used).toBeLessThanOrEqual(m.mem_total);
    expect(m.mem_total_mib).toBe(Math.floor(m.mem_total / 1024 / 1024));
    expect(m.mem_used_mib).toBe(Math.floor(m.mem_used / 1024 / 1024));
    const root = await statfs("/");
    expect(m.disk_total).toBe(root.blocks * root.bsize);
    expect(m.disk_used).toBeGreaterThan(0);
    expect(m.disk_used).toBeLessThanOrEqual(m.disk_total);
    // A second call measures CPU since the first, and answers as well.
    const again = (await (await fetch(`${envd.baseUrl}/metrics`)).json()) as Metrics;
    expect(again.cpu_used_pct).toBeGreaterThanOrEqual(0);
  });

  it("reports its cgroup's memory limit as the total when it runs inside one", async () => {
    // cgroup v2 when the unified hierarchy owns memory, else v1's memory controller.
    const v2 = existsSync("/sys/fs/cgroup/cgroup.controllers");
    const dir = v2
      ? `/sys/fs/cgroup/wrenn-metrics-test-${process.pid}`
      : `/sys/fs/cgroup/memory/wrenn-metrics-test-${process.pid}`;
    const limit = 512 * 1024 * 1024;
    await mkdir(dir);
    let inside: RunningEnvd | undefined;
    try {
      inside = await startEnvd();
      await writeFile(`${dir}/${v2 ? "memory.max" : "memory.limit_in_bytes"}`, String(limit));
      await writeFile(`${dir}/cgroup.procs`, String(inside.pid));
      const m = (await (await fetch(`${inside.baseUrl}/metrics`)).json()) as Metrics;
      expect(m.mem_total).toBe(limit);
      expect(m.mem_used).toBeGreaterThan(0);
      expect(m.mem_used).toBeLessThan(limit);
    } finally {
      await inside?.stop();
      // The cgroup can go once its last process has exited.
      for (let i = 0; i < 50 && (await readFile(`${dir}/cgroup.procs`, "utf8")).trim() !== ""; i++)
        await sleep(100);
      await rmdir(dir);
    }
  });
});
