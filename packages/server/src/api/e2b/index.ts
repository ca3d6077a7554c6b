export { E2bAccessTokens } from "./access-tokens.js";
export { createEnvdRouter, type EnvdRouter } from "./envd-router.js";
export { type E2bApiOptions, e2bApi } from "./routes.js";
export { E2B_ENVD_VERSION } from "./shapes.js";
