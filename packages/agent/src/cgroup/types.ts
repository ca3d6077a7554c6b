/** Limits of one sandbox; an omitted field leaves that resource unlimited. */
export interface CgroupLimits {
  /** CPU quota in whole or fractional CPUs (0.5 = half a CPU per period). */
  vcpus?: number;
  /** Memory limit; swap is limited to zero on top of it where the kernel accounts swap. */
  memoryMb?: number;
  /** Most tasks (processes and threads) alive at once. */
  pidsLimit?: number;
  /** Share of contended CPU time, 1..10000 (cgroup v2 cpu.weight; 100 is the default). */
  cpuWeight?: number;
}

/** A figure is null when its controller is not available on this host. */
export interface CgroupStats {
  cpuUsageUsec: number | null;
  cpuThrottledUsec: number | null;
  memoryBytes: number | null;
  /** null: unlimited. */
  memoryLimitBytes: number | null;
  pidsCurrent: number | null;
  /** null: unlimited. */
  pidsLimit: number | null;
  /** Processes the kernel OOM-killed in this cgroup. */
  oomKills: number | null;
}

/** One sandbox's cgroup, on v1 (one directory per controller) or v2 (one directory). */
export interface SandboxCgroup {
  readonly sandboxId: string;
  readonly version: 1 | 2;
  /** Directories of this cgroup (one per v1 hierarchy, or the single v2 one). */
  readonly paths: readonly string[];
  /** cgroup.procs files: writing a pid to every one of them moves that process in. */
  readonly procsFiles: readonly string[];
  /**
   * `argv` prefixed so that its process is born inside the cgroup: a /bin/sh writes its own pid
   * into every procs file and then execs argv (same pid), before argv runs a single instruction.
   */
  wrapCommand(argv: readonly string[]): string[];
  /** Rewrites the given limits of a live cgroup (omitted ones stay as they are). */
  setLimits(limits: CgroupLimits): Promise<void>;
  addProcess(pid: number): Promise<void>;
  /** Pids of the processes in the cgroup. */
  pids(): Promise<number[]>;
  /** Returns once every task is frozen. */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  isFrozen(): Promise<boolean>;
  stats(): Promise<CgroupStats>;
  /** SIGKILLs every process and waits until the cgroup is empty (frozen or not). */
  killAll(): Promise<void>;
  /** killAll, then removes the directories. Idempotent. */
  remove(): Promise<void>;
}
