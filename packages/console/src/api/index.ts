export type { components, paths } from "./openapi.gen.js";
export type { Session } from "./session.js";
export {
  ApiError,
  apiUrl,
  loadSession,
  messageOf,
  must,
  renewSession,
  restClient,
  sdkOptions,
  signIn,
  signOut,
} from "./session.js";

import type { components } from "./openapi.gen.js";
export type Sandbox = components["schemas"]["Sandbox"];
export type Snapshot = components["schemas"]["Snapshot"];
export type ApiKey = components["schemas"]["ApiKey"];
export type Host = components["schemas"]["Host"];
export type Invite = components["schemas"]["Invite"];
