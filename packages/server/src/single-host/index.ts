export type { BootstrapResult, ClientConfig } from "./bootstrap.js";
export { ADMIN_EMAIL, bootstrapSingleHost, readClientConfig } from "./bootstrap.js";
export type { EmbeddedAgent, EmbeddedAgentOptions } from "./embedded-agent.js";
export { startEmbeddedAgent } from "./embedded-agent.js";
export type { PrerequisiteReport } from "./prerequisites.js";
export { checkPrerequisites } from "./prerequisites.js";
export { isHostPrecondition, serveFleet, serveSingleHost } from "./serve-single-host.js";
export type { SingleHost, SingleHostOptions } from "./single-host.js";
export { startSingleHost } from "./single-host.js";
