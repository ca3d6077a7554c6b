export type { DirLock, ProcessStamp } from "./dir-lock.js";
export { acquireDirLock, isStampAlive, ownStamp } from "./dir-lock.js";
