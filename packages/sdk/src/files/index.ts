export type { ReadOpts, WatchOpts, WriteOpts } from "./files.js";
export { Files } from "./files.js";
export type {
  EntryInfo,
  EntryType,
  FilesystemEvent,
  WatchHandle,
  WriteData,
  WriteInfo,
} from "./types.js";
