export { E2bAccessTokens } from "./access-tokens.js";
export { createEnvdRouter, type EnvdRouter } from "./envd-router.js";
export { createRouteAccess, type RouteAccess, TRAFFIC_TOKEN_HEADER } from "./route-access.js";
export { type E2bApiOptions, e2bApi } from "./routes.js";
export { E2B_ENVD_VERSION } from "./shapes.js";
export { createSandboxUpgrade, type SandboxUpgrade } from "./ws-tunnel.js";
