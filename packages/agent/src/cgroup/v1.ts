import { mkdir } from "node:fs/promises";
import {
  killPids,
  readKeyed,
  readNumber,
  readPids,
  readText,
  removeTree,
  waitUntil,
  wrapInCgroup,
  writeValue,
} from "./cgroup-fs.js";
import type { V1Controller } from "./layout.js";
import type { CgroupLimits, CgroupStats, SandboxCgroup } from "./types.js";

const CFS_PERIOD_US = 100_000;

/** cgroup v1: one directory per controller hierarchy (deduplicated when co-mounted). */
export class V1Cgroup implements SandboxCgroup {
  readonly version = 1 as const;
  readonly paths: readonly string[];
  readonly procsFiles: readonly string[];

  constructor(
    readonly sandboxId: string,
    private readonly dirs: Record<V1Controller, string>,
  ) {
    this.paths = [...new Set(Object.values(dirs))];
    this.procsFiles = this.paths.map((p) => `${p}/cgroup.procs`);
  }

  async create(limits: CgroupLimits): Promise<void> {
    // One directory per hierarchy, each independent of the others: made at once.
    await Promise.all(this.paths.map((path) => mkdir(path, { recursive: true })));
    await this.setLimits(limits);
  }

  /** Each controller's files in their order; the controllers at once (separate hierarchies). */
  async setLimits(limits: CgroupLimits): Promise<void> {
    const { cpu, memory, pids } = this.dirs;
    const setCpu = async () => {
      if (limits.vcpus !== undefined) {
        await writeValue(`${cpu}/cpu.cfs_period_us`, CFS_PERIOD_US);
        await writeValue(`${cpu}/cpu.cfs_quota_us`, Math.round(limits.vcpus * CFS_PERIOD_US));
      }
      if (limits.cpuWeight !== undefined) {
        // cpu.shares: 1024 is the default, as weight 100 is on v2; 2 is the least.
        await writeValue(
          `${cpu}/cpu.shares`,
          Math.max(2, Math.round((limits.cpuWeight * 1024) / 100)),
        );
      }
    };
    const setMemory = async () => {
      if (limits.memoryMb === undefined) return;
      const bytes = limits.memoryMb * 1024 * 1024;
      const memLimit = `${memory}/memory.limit_in_bytes`;
      // memsw = memory + swap: equal to the memory limit means no swap. Absent without swapaccount.
      // The kernel keeps memory <= memsw at every step, so a raise writes memsw first.
      const memsw = `${memory}/memory.memsw.limit_in_bytes`;
      const current = await readText(memsw);
      const files = current === null ? [memLimit] : [memLimit, memsw];
      if (current !== null && bytes > Number(current)) files.reverse();
      for (const file of files) await writeValue(file, bytes);
    };
    const setPids = async () => {
      if (limits.pidsLimit !== undefined) await writeValue(`${pids}/pids.max`, limits.pidsLimit);
    };
    await Promise.all([setCpu(), setMemory(), setPids()]);
  }

  wrapCommand(argv: readonly string[]): string[] {
    return wrapInCgroup(this.procsFiles, argv);
  }

  async addProcess(pid: number): Promise<void> {
    for (const file of this.procsFiles) await writeValue(file, pid);
  }

  /** Union over the hierarchies: a process being moved in may be in some of them only. */
  async pids(): Promise<number[]> {
    const lists = await Promise.all(this.procsFiles.map(readPids));
    return [...new Set(lists.flat())].sort((a, b) => a - b);
  }

  async freeze(): Promise<void> {
    const state = `${this.dirs.freezer}/freezer.state`;
    await writeValue(state, "FROZEN");
    // FREEZING until every task stopped; writing again retries tasks that were busy.
    await waitUntil(`${this.sandboxId} is frozen`, async () => {
      if ((await readText(state)) === "FROZEN") return true;
      await writeValue(state, "FROZEN");
      return false;
    });
  }

  async thaw(): Promise<void> {
    await writeValue(`${this.dirs.freezer}/freezer.state`, "THAWED");
  }

  async isFrozen(): Promise<boolean> {
    return (await readText(`${this.dirs.freezer}/freezer.state`)) === "FROZEN";
  }

  async stats(): Promise<CgroupStats> {
    const { cpu, cpuacct, memory, pids } = this.dirs;
    const [usageNs, throttledNs, memoryBytes, memoryLimit, pidsCurrent, pidsLimit, oomKills] =
      await Promise.all([
        readNumber(`${cpuacct}/cpuacct.usage`),
        readKeyed(`${cpu}/cpu.stat`, "throttled_time"),
        readNumber(`${memory}/memory.usage_in_bytes`),
        readNumber(`${memory}/memory.limit_in_bytes`),
        readNumber(`${pids}/pids.current`),
        readNumber(`${pids}/pids.max`),
        readKeyed(`${memory}/memory.oom_control`, "oom_kill"),
      ]);
    return {
      cpuUsageUsec: usageNs === null ? null : Math.round(usageNs / 1000),
      cpuThrottledUsec: throttledNs === null ? null : Math.round(throttledNs / 1000),
      memoryBytes,
      memoryLimitBytes: memoryLimit,
      pidsCurrent,
      pidsLimit,
      oomKills,
    };
  }

  async killAll(): Promise<void> {
    const frozen = (await readText(`${this.dirs.freezer}/freezer.state`)) !== null;
    // Frozen tasks cannot fork while we collect their pids; SIGKILL lands once they are thawed.
    await waitUntil(`${this.sandboxId} is empty`, async () => {
      if ((await this.pids()).length === 0) return true;
      if (frozen) await this.freeze();
      killPids(await this.pids());
      if (frozen) await this.thaw();
      return false;
    });
  }

  async remove(): Promise<void> {
    await this.killAll();
    for (const path of this.paths) await removeTree(path);
  }
}

export function v1Dirs(
  mounts: Record<V1Controller, string>,
  parent: string,
  sandboxId: string,
): Record<V1Controller, string> {
  const entries = Object.entries(mounts).map(([c, m]) => [c, `${m}/${parent}/${sandboxId}`]);
  return Object.fromEntries(entries) as Record<V1Controller, string>;
}
