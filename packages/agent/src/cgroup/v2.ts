import { access, mkdir } from "node:fs/promises";
import { AgentError } from "../errors.js";
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
import type { CgroupLimits, CgroupStats, SandboxCgroup } from "./types.js";

const CPU_PERIOD_US = 100_000;

/**
 * Parents (with their controllers) made ready by this process: the agent owns its parent, so it
 * is checked once, not on every create.
 */
const preparedParents = new Set<string>();

/** Makes `controllers` usable by the children of `dir` (cgroup.subtree_control). */
async function enableControllers(dir: string, controllers: string[]): Promise<void> {
  if (controllers.length === 0) return;
  const available = ((await readText(`${dir}/cgroup.controllers`)) ?? "").split(" ");
  const missing = controllers.filter((c) => !available.includes(c));
  if (missing.length > 0) {
    throw new AgentError(
      "failed_precondition",
      `cgroup v2 controllers ${missing.join(", ")} are not available in ${dir}`,
    );
  }
  await writeValue(`${dir}/cgroup.subtree_control`, controllers.map((c) => `+${c}`).join(" "));
}

/** cgroup v2: one directory; freezing and killing are core features (no controller needed). */
export class V2Cgroup implements SandboxCgroup {
  readonly version = 2 as const;
  readonly paths: readonly string[];
  readonly procsFiles: readonly string[];

  constructor(
    readonly sandboxId: string,
    private readonly root: string,
    private readonly parent: string,
  ) {
    this.paths = [this.dir];
    this.procsFiles = [`${this.dir}/cgroup.procs`];
  }

  private get dir(): string {
    return `${this.root}/${this.parent}/${this.sandboxId}`;
  }

  async create(limits: CgroupLimits): Promise<void> {
    const controllers = [
      ...(limits.vcpus !== undefined || limits.cpuWeight !== undefined ? ["cpu"] : []),
      ...(limits.memoryMb !== undefined ? ["memory"] : []),
      ...(limits.pidsLimit !== undefined ? ["pids"] : []),
    ];
    const key = `${this.root}/${this.parent} ${controllers.join(" ")}`;
    if (!preparedParents.has(key)) {
      await this.prepareParent(controllers);
      preparedParents.add(key);
    }
    try {
      await mkdir(this.dir);
    } catch (err) {
      // The parent went since it was prepared (removed by hand): prepared again.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      await this.prepareParent(controllers);
      await mkdir(this.dir);
    }
    await this.setLimits(limits);
  }

  private async prepareParent(controllers: string[]): Promise<void> {
    await enableControllers(this.root, controllers);
    await mkdir(`${this.root}/${this.parent}`, { recursive: true });
    await enableControllers(`${this.root}/${this.parent}`, controllers);
  }

  async setLimits(limits: CgroupLimits): Promise<void> {
    // Separate files: written at once, not one after another.
    const writes: Promise<void>[] = [];
    if (limits.vcpus !== undefined) {
      const max = `${Math.round(limits.vcpus * CPU_PERIOD_US)} ${CPU_PERIOD_US}`;
      writes.push(writeValue(`${this.dir}/cpu.max`, max));
    }
    if (limits.cpuWeight !== undefined)
      writes.push(writeValue(`${this.dir}/cpu.weight`, limits.cpuWeight));
    if (limits.memoryMb !== undefined) {
      writes.push(writeValue(`${this.dir}/memory.max`, limits.memoryMb * 1024 * 1024));
      writes.push(
        readText(`${this.dir}/memory.swap.max`).then(async (swap) => {
          if (swap !== null) await writeValue(`${this.dir}/memory.swap.max`, 0);
        }),
      );
    }
    if (limits.pidsLimit !== undefined)
      writes.push(writeValue(`${this.dir}/pids.max`, limits.pidsLimit));
    await Promise.all(writes);
  }

  wrapCommand(argv: readonly string[]): string[] {
    return wrapInCgroup(this.procsFiles, argv);
  }

  async addProcess(pid: number): Promise<void> {
    await writeValue(`${this.dir}/cgroup.procs`, pid);
  }

  pids(): Promise<number[]> {
    return readPids(`${this.dir}/cgroup.procs`);
  }

  async freeze(): Promise<void> {
    await writeValue(`${this.dir}/cgroup.freeze`, 1);
    await waitUntil(`${this.sandboxId} is frozen`, () => this.isFrozen());
  }

  async thaw(): Promise<void> {
    await writeValue(`${this.dir}/cgroup.freeze`, 0);
  }

  async isFrozen(): Promise<boolean> {
    return (await readKeyed(`${this.dir}/cgroup.events`, "frozen")) === 1;
  }

  async stats(): Promise<CgroupStats> {
    const d = this.dir;
    const [usage, throttled, memoryBytes, memoryLimit, pidsCurrent, pidsLimit, oomKills] =
      await Promise.all([
        readKeyed(`${d}/cpu.stat`, "usage_usec"),
        readKeyed(`${d}/cpu.stat`, "throttled_usec"),
        readNumber(`${d}/memory.current`),
        readNumber(`${d}/memory.max`),
        readNumber(`${d}/pids.current`),
        readNumber(`${d}/pids.max`),
        readKeyed(`${d}/memory.events`, "oom_kill"),
      ]);
    return {
      cpuUsageUsec: usage,
      cpuThrottledUsec: throttled,
      memoryBytes,
      memoryLimitBytes: memoryLimit,
      pidsCurrent,
      pidsLimit,
      oomKills,
    };
  }

  async killAll(): Promise<void> {
    const events = `${this.dir}/cgroup.events`;
    if ((await readText(events)) === null) return;
    // cgroup.kill (Linux 5.14+) kills every task atomically, frozen or not, forks included.
    const hasKill = await access(`${this.dir}/cgroup.kill`).then(
      () => true,
      () => false,
    );
    await waitUntil(`${this.sandboxId} is empty`, async () => {
      if ((await readKeyed(events, "populated")) === 0) return true;
      if (hasKill) {
        await writeValue(`${this.dir}/cgroup.kill`, 1);
      } else {
        await this.freeze();
        killPids(await this.pids());
        await this.thaw();
      }
      return false;
    });
  }

  async remove(): Promise<void> {
    await this.killAll();
    await removeTree(this.dir);
  }
}
