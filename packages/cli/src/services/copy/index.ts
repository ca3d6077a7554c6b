export type { CopyEvents, CopyItem, CopyPlan, CopyResult } from "./copy.js";
export { download, planLocal, planRemote, upload } from "./copy.js";
export type { Location } from "./location.js";
export { baseName, joinRemote, parseLocation } from "./location.js";
