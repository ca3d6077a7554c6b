export {
  assertAccess,
  assertRemovable,
  assertWritableDir,
  ensureDirs,
  openChecked,
  openWritableDir,
} from "./access.js";
export { entryInfo, permissionString } from "./entry-info.js";
export { resolvePath } from "./paths.js";
export type { FilesystemService } from "./service.js";
export { createFilesystemService } from "./service.js";
