import { type NewSandbox, type NewTemplateRow, newId } from "../../src/db/index.js";

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

/** A template row (a snapshot unless `over` says otherwise: a built template, a layer), written
 * straight into the database by tests of the store and the reconciler. */
export function templateRow(
  teamId: string,
  name: string,
  over: Partial<NewTemplateRow> = {},
): NewTemplateRow {
  return {
    id: newId(),
    teamId,
    name,
    sourceSandboxId: null,
    hostId: null,
    baseTemplate: "base",
    vcpus: 1,
    memoryMb: 512,
    diskSizeMb: 1024,
    createdAt: new Date().toISOString(),
    ...over,
  };
}
