import type { HostRecord } from "../db/index.js";

/** A host that may take a sandbox, with what its live sandboxes already hold. */
export interface HostLoad {
  host: HostRecord;
  committedVcpus: number;
  committedMemoryMb: number;
  sandboxes: number;
}

/** What the new sandbox needs. */
export interface Placement {
  vcpus: number;
  memoryMb: number;
}

/** Picks one host among candidates that all fit; `undefined` only when there are none. */
export interface Scheduler {
  readonly name: SchedulerName;
  pick(candidates: readonly HostLoad[], placement: Placement): HostLoad | undefined;
}

export type SchedulerName = "least-loaded" | "round-robin";

/** The fraction of the host's capacity its sandboxes would hold with this one added. */
function loadAfter(c: HostLoad, p: Placement): number {
  const memory = c.host.capacity.memory_mb
    ? (c.committedMemoryMb + p.memoryMb) / c.host.capacity.memory_mb
    : 0;
  const vcpus = c.host.capacity.vcpus ? (c.committedVcpus + p.vcpus) / c.host.capacity.vcpus : 0;
  return Math.max(memory, vcpus);
}

/** Loads this close count as equal, so near-empty hosts share creates in turn. */
const EQUAL_LOAD = 0.01;

/** Least loaded by committed memory and vCPUs against capacity; round-robin among equals. */
export class LeastLoadedScheduler implements Scheduler {
  readonly name = "least-loaded";
  private turn = 0;

  pick(candidates: readonly HostLoad[], placement: Placement): HostLoad | undefined {
    if (candidates.length === 0) return undefined;
    const loads = candidates.map((c) => loadAfter(c, placement));
    const least = Math.min(...loads);
    const equals = candidates.filter((_, i) => (loads[i] as number) - least < EQUAL_LOAD);
    return equals[this.turn++ % equals.length];
  }
}

/** Each create on the next host in turn (by id), whatever their load. */
export class RoundRobinScheduler implements Scheduler {
  readonly name = "round-robin";
  private turn = 0;

  pick(candidates: readonly HostLoad[]): HostLoad | undefined {
    if (candidates.length === 0) return undefined;
    const sorted = [...candidates].sort((a, b) => a.host.id.localeCompare(b.host.id));
    return sorted[this.turn++ % sorted.length];
  }
}

export function createScheduler(name: SchedulerName): Scheduler {
  return name === "round-robin" ? new RoundRobinScheduler() : new LeastLoadedScheduler();
}

/** Whether the host has room for the placement (memory is not overcommitted; vCPUs may be). */
export function fits(c: HostLoad, p: Placement): boolean {
  const { memory_mb: memoryMb, max_sandboxes: maxSandboxes } = c.host.capacity;
  if (maxSandboxes && c.sandboxes >= maxSandboxes) return false;
  return !memoryMb || c.committedMemoryMb + p.memoryMb <= memoryMb;
}
