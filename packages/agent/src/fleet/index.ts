export type { ControlPlaneOptions } from "./control-plane.js";
export { ControlPlane, ControlPlaneError } from "./control-plane.js";
export type { HostCredentials } from "./credentials.js";
export { CREDENTIALS_FILE, newAgentKey, readCredentials, writeCredentials } from "./credentials.js";
export type { FleetMemberOptions, HeartbeatResponse } from "./fleet-member.js";
export { CRASH_AFTER_REFRESH_ENV, FleetMember } from "./fleet-member.js";
export type { CredentialsResponse } from "./registration.js";
export { checkServerUrl, isPrivateAddress } from "./server-url.js";
