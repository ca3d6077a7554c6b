import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { AgentError } from "../src/errors.js";
import { silentLogger } from "../src/logger/index.js";
import { Reaper } from "../src/reaper/index.js";
import type { Runtime, SandboxInfo } from "../src/runtime/index.js";

// The reaper's decisions against a runtime whose pause we control (the namespace runtime's own
// pause is covered by the contract suite and the agent test's real TTL auto-pause).
function runtimeWith(pause: (id: string) => Promise<void>) {
  const sandboxes = new Map<string, SandboxInfo>();
  const destroyed: string[] = [];
  const add = (id: string, timeoutSec: number) =>
    sandboxes.set(id, {
      id,
      runtime: "test",
      template: "t",
      state: "running",
      vcpus: 1,
      memoryMb: 64,
      diskSizeMb: 8,
      timeoutSec,
      metadata: {},
      allowInternetAccess: false,
      egress: { allowOut: [], denyOut: [] },
      createdAt: new Date(),
      envdAddress: "",
      autoPaused: false,
    });
  const runtime = {
    list: () => [...sandboxes.values()],
    pause: async (id: string) => {
      await pause(id);
      sandboxes.get(id)!.state = "paused";
    },
    destroy: async (id: string) => {
      destroyed.push(id);
      sandboxes.delete(id);
    },
  } as unknown as Runtime;
  return { runtime, sandboxes, destroyed, add };
}

describe("reaper", () => {
  it("pauses only sandboxes idle past their timeout, never those in use or with timeout 0", async () => {
    const paused: string[] = [];
    const { runtime, add } = runtimeWith(async (id) => {
      paused.push(id);
    });
    const reaper = new Reaper({ runtime, logger: silentLogger(), intervalMs: 10_000 });
    for (const id of ["idle", "never", "busy", "pinged"]) add(id, id === "never" ? 0 : 1);
    for (const id of ["idle", "never", "busy", "pinged"]) reaper.touch(id);
    const release = reaper.hold("busy");
    await sleep(1_100);
    reaper.touch("pinged");
    reaper.sweep();
    await reaper.stop();
    expect(paused).toEqual(["idle"]);
    release();
  });

  it("destroys a sandbox whose pause fails, but not one that changed state meanwhile", async () => {
    const { runtime, add, destroyed } = runtimeWith(async (id) => {
      if (id === "broken") throw new AgentError("internal", "freeze failed");
      throw new AgentError("failed_precondition", "already paused");
    });
    const reaper = new Reaper({ runtime, logger: silentLogger() });
    add("broken", 1);
    add("raced", 1);
    reaper.touch("broken");
    reaper.touch("raced");
    await sleep(1_100);
    reaper.sweep();
    await reaper.stop();
    expect(destroyed).toEqual(["broken"]);
  });

  it("stop() waits for a pause under way instead of abandoning it", async () => {
    let finished = false;
    const { runtime, add, sandboxes } = runtimeWith(async () => {
      await sleep(300);
      finished = true;
    });
    const reaper = new Reaper({ runtime, logger: silentLogger() });
    add("slow", 1);
    reaper.touch("slow");
    await sleep(1_100);
    reaper.sweep();
    await reaper.stop();
    expect(finished).toBe(true);
    expect(sandboxes.get("slow")?.state).toBe("paused");
  });
});
