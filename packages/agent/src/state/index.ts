export { assertSandboxId, isSandboxId } from "./sandbox-id.js";
export type { SandboxPhase, SandboxRecord, SnapshotRecord } from "./state-store.js";
export { StateStore } from "./state-store.js";
