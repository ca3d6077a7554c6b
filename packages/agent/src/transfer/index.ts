export { handleSnapshotArchive, SNAPSHOT_HEADER } from "./snapshot-archive.js";
