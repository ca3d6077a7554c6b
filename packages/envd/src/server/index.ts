export type { Envd, EnvdOptions } from "./app.js";
export { createEnvd } from "./app.js";
