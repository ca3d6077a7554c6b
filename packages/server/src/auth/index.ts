export type { ApiKeyFormat } from "./api-keys.js";
export {
  API_KEY_PREFIX,
  E2B_API_KEY_PREFIX,
  generateApiKey,
  hashApiKey,
  looksLikeApiKey,
} from "./api-keys.js";
export type { HostClaims } from "./host-credentials.js";
export {
  HOST_JWT_TTL_SEC,
  HOST_REFRESH_TTL_SEC,
  HostCredentials,
  hashOpaqueToken,
  newOpaqueToken,
} from "./host-credentials.js";
export { decoyPasswordHash, hashPassword, verifyPassword } from "./password.js";
export type { TokenClaims } from "./tokens.js";
export { loadJwtSecret, TokenIssuer } from "./tokens.js";
