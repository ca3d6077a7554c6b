import { type NewSandbox, newId } from "../../src/db/index.js";

/**
 * A sandbox row as a create leaves it (running, 1 vCPU, 512 MiB), written straight into the
 * database by tests whose subject is not the agent; `over` changes what the test is about.
 */
export function sandboxRow(teamId: string, over: Partial<NewSandbox> = {}): NewSandbox {
  const at = new Date().toISOString();
  return {
    id: newId(),
    teamId,
    hostId: null,
    template: "base",
    runtime: "namespace",
    snapshotId: null,
    state: "running",
    vcpus: 1,
    memoryMb: 512,
    diskSizeMb: 1024,
    timeoutSec: 0,
    metadata: {},
    createdAt: at,
    updatedAt: at,
    lastActiveAt: at,
    stoppedAt: null,
    ...over,
  };
}
