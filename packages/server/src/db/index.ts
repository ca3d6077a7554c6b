export type { Db, DbHandle, DialectName, OpenDbOptions } from "./connect.js";
export { isUniqueViolation, migrateToLatest, openDb } from "./connect.js";
export { isId, newId, nowIso } from "./ids.js";
export type { HostRecord, HostState } from "./repos/hosts.js";
export type {
  ListSandboxesQuery,
  Page,
  SandboxPatch,
  SandboxRecord,
  SandboxState,
} from "./repos/sandboxes.js";
export { SANDBOX_STATES } from "./repos/sandboxes.js";
export type { Membership, TeamRole } from "./repos/users.js";
export type { ApiKeyRow, TeamRow, TemplateRow, UserRow } from "./schema.js";
export { Store } from "./store.js";
