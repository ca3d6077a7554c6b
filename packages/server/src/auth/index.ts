export { API_KEY_PREFIX, generateApiKey, hashApiKey } from "./api-keys.js";
export { decoyPasswordHash, hashPassword, verifyPassword } from "./password.js";
export type { TokenClaims } from "./tokens.js";
export { loadJwtSecret, TokenIssuer } from "./tokens.js";
