export { envdBundlePath, envdDistDir } from "./paths.js";
export type { Envd, EnvdOptions } from "./server/app.js";
export { createEnvd } from "./server/app.js";
export type { Listener, RequestHandler } from "./server/listen.js";
export { listenHttp } from "./server/listen.js";
export type { SpawnEnvdOptions, SpawnedEnvd } from "./spawn.js";
export { spawnEnvd } from "./spawn.js";
