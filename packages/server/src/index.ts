export type {
  App,
  AppEnv,
  CreateAppOptions,
  Readiness,
  ServerApp,
  UpgradeHandler,
} from "./api/index.js";
export { createApp, openApiDocument } from "./api/index.js";
export type { ServerConfig } from "./config/index.js";
export { loadConfig } from "./config/index.js";
export type { DbHandle, DialectName, OpenDbOptions } from "./db/index.js";
export { migrateToLatest, openDb } from "./db/index.js";
export type { ServerErrorCode } from "./errors.js";
export { httpStatusOf, ServerError } from "./errors.js";
export type { HumanStreamOptions, LogFormat } from "./logging/index.js";
export { createLogger, humanStream, logFormat } from "./logging/index.js";
export type { HttpListener, RunningServer } from "./serve.js";
export { listenApp, openMigratedDb, startServer } from "./serve.js";
export type { Services, TeamPrincipal, UserPrincipal } from "./service/index.js";
export { createServices } from "./service/index.js";
export type {
  ClientConfig,
  EmbeddedAgent,
  PrerequisiteReport,
  SingleHost,
  SingleHostOptions,
} from "./single-host/index.js";
export {
  bootstrapSingleHost,
  checkPrerequisites,
  isHostPrecondition,
  readClientConfig,
  serveFleet,
  serveSingleHost,
  startEmbeddedAgent,
  startSingleHost,
} from "./single-host/index.js";
