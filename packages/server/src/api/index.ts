export type { CreateAppOptions, ServerApp } from "./app.js";
export { createApp } from "./app.js";
export type { App, AppEnv } from "./env.js";
export type { Readiness } from "./routes/meta.js";
export { openApiDocument } from "./routes/meta.js";
export type { UpgradeHandler } from "./ws/index.js";
export { createUpgradeHandler } from "./ws/index.js";
