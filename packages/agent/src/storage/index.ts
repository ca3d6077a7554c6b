export type { StorageDebris } from "./debris.js";
export { cleanupStorageDebris, listStorageDebris } from "./debris.js";
export type {
  CreateSandboxDiskOptions,
  DiskUsage,
  LoopDevice,
  SandboxDisk,
} from "./disk.js";
export {
  createSandboxDisk,
  destroySandboxDisk,
  diskUsage,
  listLoopDevices,
  mountRootfs,
  openSandboxDisk,
  sandboxDiskLayout,
  unmount,
  unmountRootfs,
} from "./disk.js";
export type { DiskPoolOptions } from "./disk-pool.js";
export { DiskPool } from "./disk-pool.js";
export { assertRoomFor } from "./free-space.js";
export { freezeUpperToLayer } from "./layer.js";
export type { MountEntry } from "./mountinfo.js";
export { isWithin, mountsUnder, readMountInfo } from "./mountinfo.js";
