import { describe, expect, it } from "vitest";
import type { HostRecord } from "../db/index.js";
import { fits, type HostLoad, LeastLoadedScheduler, RoundRobinScheduler } from "./scheduler.js";

function load(id: string, memoryMb: number, committedMemoryMb: number, sandboxes = 0): HostLoad {
  const host = {
    id,
    state: "ready",
    capacity: { vcpus: 4, memory_mb: memoryMb },
  } as HostRecord;
  return { host, committedVcpus: sandboxes, committedMemoryMb, sandboxes };
}

const small = { vcpus: 1, memoryMb: 512 };

describe("schedulers", () => {
  it("least-loaded picks the emptiest host by committed memory and vCPUs against capacity", () => {
    const s = new LeastLoadedScheduler();
    const hosts = [load("a", 8192, 4096, 4), load("b", 8192, 1024, 1), load("c", 4096, 2048, 2)];
    expect(s.pick(hosts, small)?.host.id).toBe("b");
  });

  it("least-loaded takes equals in turn", () => {
    const s = new LeastLoadedScheduler();
    const hosts = [load("a", 8192, 0), load("b", 8192, 0), load("c", 8192, 0)];
    const picks = Array.from({ length: 6 }, () => s.pick(hosts, small)?.host.id);
    expect(new Set(picks)).toEqual(new Set(["a", "b", "c"]));
    expect(picks.slice(0, 3)).toEqual(picks.slice(3));
  });

  it("round-robin ignores load", () => {
    const s = new RoundRobinScheduler();
    const hosts = [load("b", 8192, 8000), load("a", 8192, 0)];
    expect([s.pick(hosts)?.host.id, s.pick(hosts)?.host.id, s.pick(hosts)?.host.id]).toEqual([
      "a",
      "b",
      "a",
    ]);
  });

  it("memory is never overcommitted; max_sandboxes is a hard cap", () => {
    expect(fits(load("a", 1024, 512), small)).toBe(true);
    expect(fits(load("a", 1024, 768), small)).toBe(false);
    const capped = load("a", 8192, 0, 2);
    capped.host.capacity.max_sandboxes = 2;
    expect(fits(capped, small)).toBe(false);
    expect(new LeastLoadedScheduler().pick([], small)).toBeUndefined();
  });
});
