import * as fs from "node:fs/promises";
import os from "node:os";
import type { Request, Response } from "./respond.js";
import { sendJson } from "./respond.js";

/** GET /metrics, E2B's shape: the sandbox's own view of its CPUs, memory and root disk. */
export interface Metrics {
  /** Unix time, seconds. */
  ts: number;
  cpu_count: number;
  /** Percent of `cpu_count` CPUs in use since the previous call (or over a short sample), 2 decimals. */
  cpu_used_pct: number;
  mem_total_mib: number;
  mem_used_mib: number;
  mem_total: number;
  mem_used: number;
  mem_cache: number;
  disk_used: number;
  disk_total: number;
}

const MiB = 1024 * 1024;
/** Shortest window a CPU percentage is measured over. */
const minSampleMs = 100;

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(path, "utf8")).trim();
  } catch {
    return undefined;
  }
}

async function readNumber(path: string): Promise<number | undefined> {
  const text = await readText(path);
  const value = text === undefined ? Number.NaN : Number(text);
  return Number.isFinite(value) ? value : undefined;
}

function statField(text: string | undefined, field: string): number | undefined {
  const match = text && new RegExp(`^${field}\\s+(\\d+)`, "m").exec(text);
  return match ? Number(match[1]) : undefined;
}

/**
 * Directories of this process's cgroups: the v2 one, and v1 ones per controller. Inside a
 * sandbox's cgroup namespace these are the sandbox's own, so limits read there are the sandbox's.
 */
async function cgroupDirs(): Promise<{ v2?: string; v1: Map<string, string> }> {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of ((await readText("/proc/self/cgroup")) ?? "").split("\n")) {
    const [, controllers = "", path = ""] = line.split(":");
    if (!line) continue;
    if (controllers === "") {
      for (const root of ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) {
        if ((await readText(`${root}/cgroup.controllers`)) !== undefined) {
          v2 = `${root}${path === "/" ? "" : path}`;
          break;
        }
      }
      continue;
    }
    for (const controller of controllers.split(",")) {
      for (const dir of [
        `/sys/fs/cgroup/${controllers}${path}`,
        `/sys/fs/cgroup/${controller}${path}`,
        `/sys/fs/cgroup/${controller}`,
      ]) {
        if ((await readText(`${dir}/cgroup.procs`)) !== undefined) {
          v1.set(controller, dir);
          break;
        }
      }
    }
  }
  return { v2, v1 };
}

type Cgroups = Awaited<ReturnType<typeof cgroupDirs>>;

async function cpuCount(cg: Cgroups): Promise<number> {
  const cpus = os.cpus().length || 1;
  let quota: number | undefined;
  let period: number | undefined;
  const max = cg.v2 && (await readText(`${cg.v2}/cpu.max`));
  if (max) {
    const [q = "max", p = "100000"] = max.split(/\s+/);
    if (q !== "max") [quota, period] = [Number(q), Number(p)];
  } else if (cg.v1.has("cpu")) {
    quota = await readNumber(`${cg.v1.get("cpu")}/cpu.cfs_quota_us`);
    period = await readNumber(`${cg.v1.get("cpu")}/cpu.cfs_period_us`);
  }
  if (quota && period && quota > 0 && period > 0)
    return Math.max(1, Math.min(cpus, Math.ceil(quota / period)));
  return cpus;
}

/** CPU time used so far, in microseconds: the cgroup's when readable, else the machine's from /proc/stat. */
async function cpuUsageUs(cg: Cgroups, cpus: number): Promise<{ used: number; capacity?: number }> {
  const v2 = cg.v2 ? statField(await readText(`${cg.v2}/cpu.stat`), "usage_usec") : undefined;
  if (v2 !== undefined) return { used: v2 };
  const v1 = cg.v1.has("cpuacct")
    ? await readNumber(`${cg.v1.get("cpuacct")}/cpuacct.usage`)
    : undefined;
  if (v1 !== undefined) return { used: v1 / 1000 };
  // /proc/stat: jiffies (USER_HZ, 100 on Linux) busy vs total, all CPUs.
  const line = ((await readText("/proc/stat")) ?? "").split("\n")[0] ?? "";
  const fields = line.split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { used: ((total - idle) * 1e6) / 100, capacity: (total * 1e6) / 100 / cpus };
}

let lastSample: { at: number; used: number; capacity?: number } | undefined;

async function cpuPercent(cg: Cgroups, cpus: number): Promise<number> {
  const take = async () => ({ at: performance.now(), ...(await cpuUsageUs(cg, cpus)) });
  let before = lastSample;
  if (!before || performance.now() - before.at < minSampleMs) {
    before = await take();
    await new Promise((resolve) => setTimeout(resolve, minSampleMs));
  }
  const now = await take();
  lastSample = now;
  // /proc/stat counts wall time in jiffies itself; cgroup usage is measured against the clock.
  const wallUs =
    now.capacity !== undefined && before.capacity !== undefined
      ? now.capacity - before.capacity
      : (now.at - before.at) * 1000;
  if (wallUs <= 0) return 0;
  const pct = ((now.used - before.used) / (wallUs * cpus)) * 100;
  return Math.round(Math.min(100, Math.max(0, pct)) * 100) / 100;
}

async function memory(cg: Cgroups): Promise<{ total: number; used: number; cache: number }> {
  const info = (await readText("/proc/meminfo")) ?? "";
  const kb = (field: string) =>
    (Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(info)?.[1]) || 0) * 1024;
  const hostTotal = kb("MemTotal") || os.totalmem();
  const host = {
    total: hostTotal,
    used: hostTotal - (kb("MemAvailable") || os.freemem()),
    cache: kb("Cached") + kb("Buffers"),
  };
  let limit: number | undefined;
  let usage: number | undefined;
  let inactiveFile: number | undefined;
  let cache: number | undefined;
  if (cg.v2 && cg.v2 !== "/sys/fs/cgroup" && cg.v2 !== "/sys/fs/cgroup/unified") {
    limit = await readNumber(`${cg.v2}/memory.max`);
    usage = await readNumber(`${cg.v2}/memory.current`);
    const stat = await readText(`${cg.v2}/memory.stat`);
    inactiveFile = statField(stat, "inactive_file");
    cache = statField(stat, "file");
  }
  if (limit === undefined && cg.v1.has("memory")) {
    const dir = cg.v1.get("memory");
    limit = await readNumber(`${dir}/memory.limit_in_bytes`);
    usage = await readNumber(`${dir}/memory.usage_in_bytes`);
    const stat = await readText(`${dir}/memory.stat`);
    inactiveFile = statField(stat, "total_inactive_file");
    cache = statField(stat, "total_cache");
  }
  // No limit (or one above the machine's memory): the machine's figures are the honest ones.
  if (limit === undefined || usage === undefined || limit >= hostTotal) return host;
  return { total: limit, used: Math.max(0, usage - (inactiveFile ?? 0)), cache: cache ?? 0 };
}

async function disk(): Promise<{ total: number; used: number }> {
  // fs.statfs arrived in Node 18.15; older Nodes report zeros rather than fail.
  if (typeof fs.statfs !== "function") return { total: 0, used: 0 };
  const st = await fs.statfs("/");
  return { total: st.blocks * st.bsize, used: (st.blocks - st.bfree) * st.bsize };
}

export async function collectMetrics(): Promise<Metrics> {
  const cg = await cgroupDirs();
  const cpus = await cpuCount(cg);
  const [cpuUsedPct, mem, diskUse] = await Promise.all([cpuPercent(cg, cpus), memory(cg), disk()]);
  return {
    ts: Math.floor(Date.now() / 1000),
    cpu_count: cpus,
    cpu_used_pct: cpuUsedPct,
    mem_total_mib: Math.floor(mem.total / MiB),
    mem_used_mib: Math.floor(mem.used / MiB),
    mem_total: mem.total,
    mem_used: mem.used,
    mem_cache: mem.cache,
    disk_used: diskUse.used,
    disk_total: diskUse.total,
  };
}

export async function handleMetrics(_req: Request, res: Response): Promise<void> {
  sendJson(res, 200, await collectMetrics());
}
