export type { Db, DbHandle, DialectName, OpenDbOptions } from "./connect.js";
export {
  isDatabaseUnavailable,
  isUniqueViolation,
  migrateToLatest,
  openDb,
  PG_CONNECT_TIMEOUT_MS,
} from "./connect.js";
export { isId, newId, nowIso } from "./ids.js";
export type { HostCapacity, HostRecord, HostState, NewHost } from "./repos/hosts.js";
export type {
  HostCommitment,
  ListSandboxesQuery,
  NewSandbox,
  Page,
  SandboxNetwork,
  SandboxPatch,
  SandboxRecord,
  SandboxState,
} from "./repos/sandboxes.js";
export { SANDBOX_STATES } from "./repos/sandboxes.js";
export { BUILD_MARK } from "./repos/templates.js";
export type { Membership, TeamMember, TeamRole } from "./repos/users.js";
export type {
  ApiKeyRow,
  HostRefreshTokenRow,
  HostRegistrationTokenRow,
  NewTemplateRow,
  TeamRow,
  TemplateKind,
  TemplateRow,
  UserRow,
} from "./schema.js";
export { Store } from "./store.js";
