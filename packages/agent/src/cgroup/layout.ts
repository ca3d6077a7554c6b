import { AgentError } from "../errors.js";
import { type MountEntry, readMountInfo } from "../storage/mountinfo.js";

/** v1 controllers a sandbox uses; cpuset is not needed. */
export const V1_CONTROLLERS = ["cpu", "cpuacct", "memory", "pids", "freezer"] as const;
export type V1Controller = (typeof V1_CONTROLLERS)[number];

/** Where the agent's cgroups live: one hierarchy per v1 controller, or the v2 unified root. */
export type CgroupLayout =
  | { version: 1; mounts: Record<V1Controller, string>; parent: string }
  | { version: 2; root: string; parent: string };

/** The directory under each hierarchy that holds every sandbox's cgroup. */
export const DEFAULT_PARENT = "wrenn";

async function cgroupMounts(): Promise<MountEntry[]> {
  const mounts = await readMountInfo();
  return mounts.filter((m) => m.fsType === "cgroup" || m.fsType === "cgroup2");
}

/**
 * v1 when every needed controller has a v1 hierarchy (legacy and hybrid hosts), else v2 when a
 * cgroup2 hierarchy is mounted (pure v2 hosts; controllers are enabled as needed on create).
 */
export async function detectCgroupLayout(parent = DEFAULT_PARENT): Promise<CgroupLayout> {
  const mounts = await cgroupMounts();
  const v1 = new Map<string, string>();
  for (const m of mounts) {
    if (m.fsType !== "cgroup") continue;
    for (const option of m.superOptions) if (!v1.has(option)) v1.set(option, m.mountPoint);
  }
  if (V1_CONTROLLERS.every((c) => v1.has(c))) {
    const entries = V1_CONTROLLERS.map((c) => [c, v1.get(c)!] as const);
    return {
      version: 1,
      mounts: Object.fromEntries(entries) as Record<V1Controller, string>,
      parent,
    };
  }
  const unified = mounts.find((m) => m.fsType === "cgroup2");
  if (unified) return { version: 2, root: unified.mountPoint, parent };
  throw new AgentError("failed_precondition", "no usable cgroup hierarchy is mounted");
}
