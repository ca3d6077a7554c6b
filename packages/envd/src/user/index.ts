export type { UserInfo } from "./passwd.js";
export { lookupUser } from "./passwd.js";
export { userFromHeaders, userFromName } from "./resolve.js";
