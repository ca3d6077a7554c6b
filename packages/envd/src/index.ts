// The light parts hosts need (paths of the bundle, the listener, a process launcher, the spawn
// helper's client, the end of an early answer, malloc's thresholds). The daemon itself, with its
// native PTY module, is `@wrenn/envd/server`.
export { ERROR_CODE_HEADER } from "./errors.js";
export { raiseMallocThresholds } from "./heap/index.js";
export { endAfterBody } from "./http/end-after-body.js";
export { envdBundlePath, envdDistDir, spawnHelperPath } from "./paths.js";
export type { HelperSpawn, PipeChild } from "./process/spawn-helper.js";
export { HelperUnavailable, SpawnHelper } from "./process/spawn-helper.js";
export type { Listener, RequestHandler, UpgradeListener } from "./server/listen.js";
export { listenHttp } from "./server/listen.js";
export type { SpawnEnvdOptions, SpawnedEnvd } from "./spawn.js";
export { spawnEnvd } from "./spawn.js";
