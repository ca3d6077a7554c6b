export type { SnapshotInfo, WireSnapshot } from "./snapshot.js";
export { Snapshot, snapshotFromWire } from "./snapshot.js";
