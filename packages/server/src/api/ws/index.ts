export { MAX_FRAME_BYTES } from "./frames.js";
export type { UpgradeHandler } from "./upgrade.js";
export { createUpgradeHandler, EXEC_STREAM_PATH } from "./upgrade.js";
