import { access, readdir } from "node:fs/promises";
import { AgentError } from "../errors.js";
import { assertSandboxId } from "../state/index.js";
import { removeTree } from "./cgroup-fs.js";
import { type CgroupLayout, detectCgroupLayout } from "./layout.js";
import type { CgroupLimits, SandboxCgroup } from "./types.js";
import { V1Cgroup, v1Dirs } from "./v1.js";
import { V2Cgroup } from "./v2.js";

export type { CgroupLayout, V1Controller } from "./layout.js";
export { DEFAULT_PARENT, detectCgroupLayout, V1_CONTROLLERS } from "./layout.js";
export type { CgroupLimits, CgroupStats, SandboxCgroup } from "./types.js";

export interface CgroupOptions {
  /** Defaults to detectCgroupLayout() (v1 on legacy/hybrid hosts, else v2). */
  layout?: CgroupLayout;
}

function validateLimits(limits: CgroupLimits): void {
  const positive = (name: string, value: number | undefined, integer: boolean) => {
    if (value === undefined) return;
    if (!(value > 0) || (integer && !Number.isInteger(value))) {
      throw new AgentError("invalid_argument", `${name} must be a positive number: ${value}`);
    }
  };
  positive("vcpus", limits.vcpus, false);
  positive("memoryMb", limits.memoryMb, true);
  positive("pidsLimit", limits.pidsLimit, true);
  positive("cpuWeight", limits.cpuWeight, true);
}

let detected: Promise<CgroupLayout> | undefined;

/** The host's layout, detected once per process (it does not change while the agent runs). */
function layoutOf(options: CgroupOptions): Promise<CgroupLayout> {
  if (options.layout) return Promise.resolve(options.layout);
  detected ??= detectCgroupLayout();
  return detected;
}

function handle(sandboxId: string, layout: CgroupLayout): V1Cgroup | V2Cgroup {
  return layout.version === 1
    ? new V1Cgroup(sandboxId, v1Dirs(layout.mounts, layout.parent, sandboxId))
    : new V2Cgroup(sandboxId, layout.root, layout.parent);
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** Creates `wrenn/<sandboxId>` with the limits; on failure removes what it made. */
export async function createCgroup(
  sandboxId: string,
  limits: CgroupLimits,
  options: CgroupOptions = {},
): Promise<SandboxCgroup> {
  assertSandboxId(sandboxId);
  validateLimits(limits);
  const layout = await layoutOf(options);
  const cgroup = handle(sandboxId, layout);
  for (const path of cgroup.paths) {
    if (await exists(path)) {
      throw new AgentError("already_exists", `cgroup ${path} already exists`);
    }
  }
  try {
    await cgroup.create(limits);
  } catch (err) {
    await Promise.allSettled(cgroup.paths.map(removeTree));
    throw AgentError.from(err);
  }
  return cgroup;
}

/** Adoption after an agent restart: the sandbox's cgroup if any of its directories exists. */
export async function openCgroup(
  sandboxId: string,
  options: CgroupOptions = {},
): Promise<SandboxCgroup | undefined> {
  assertSandboxId(sandboxId);
  const cgroup = handle(sandboxId, await layoutOf(options));
  for (const path of cgroup.paths) if (await exists(path)) return cgroup;
  return undefined;
}

/** Ids of sandbox cgroups (in any hierarchy) that are not in `keepIds`. */
export async function listCgroupDebris(
  keepIds: Iterable<string> = [],
  options: CgroupOptions = {},
): Promise<string[]> {
  const layout = await layoutOf(options);
  const keep = new Set(keepIds);
  const parents =
    layout.version === 1
      ? [...new Set(Object.values(layout.mounts))].map((m) => `${m}/${layout.parent}`)
      : [`${layout.root}/${layout.parent}`];
  const ids = new Set<string>();
  for (const parent of parents) {
    const entries = await readdir(parent, { withFileTypes: true }).catch(() => []);
    for (const entry of entries)
      if (entry.isDirectory() && !keep.has(entry.name)) ids.add(entry.name);
  }
  return [...ids].sort();
}

/** Kills and removes every sandbox cgroup not in `keepIds`; returns every failure. */
export async function cleanupCgroupDebris(
  keepIds: Iterable<string> = [],
  options: CgroupOptions = {},
): Promise<AgentError[]> {
  const layout = await layoutOf(options);
  const errors: AgentError[] = [];
  for (const sandboxId of await listCgroupDebris(keepIds, { layout })) {
    try {
      await handle(sandboxId, layout).remove();
    } catch (err) {
      errors.push(AgentError.from(err));
    }
  }
  return errors;
}
