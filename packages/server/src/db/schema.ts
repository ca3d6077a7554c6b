import type { ColumnType, Generated, Insertable, Selectable } from "kysely";

// Column types are chosen to read back identically from SQLite and PostgreSQL: text ids,
// ISO-8601 text times, integers for numbers and flags, JSON kept as text. Property names are
// camelCase here; CamelCasePlugin maps them to the snake_case columns of the migrations.

export interface UsersTable {
  id: string;
  email: string;
  passwordHash: string;
  createdAt: string;
  /** Login tokens issued before this instant are refused (logout, password change). */
  tokensValidAfter: Generated<string | null>;
}

export interface TeamsTable {
  id: string;
  name: string;
  createdAt: string;
  /** 1 for the operator's team (made at bootstrap): may register shared hosts and see them. */
  isAdmin: Generated<number>;
}

export interface UsersTeamsTable {
  userId: string;
  teamId: string;
  role: string;
  /** 1 for the team a login lands in. */
  isDefault: number;
  createdAt: string;
}

export interface TeamApiKeysTable {
  id: string;
  teamId: string;
  name: string;
  /** Hex SHA-256 of the whole key; the key itself is never stored. */
  keyHash: string;
  /** The first characters of the key, to recognise it in a list. */
  keyPrefix: string;
  createdBy: string | null;
  createdAt: string;
  lastUsedAt: string | null;
}

export interface SandboxesTable {
  id: string;
  teamId: string;
  hostId: string | null;
  template: string;
  /** "namespace" or "microvm". */
  runtime: Generated<string>;
  /** Set when the sandbox started from a team snapshot. */
  snapshotId: string | null;
  state: string;
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  timeoutSec: number;
  /** JSON object of string → string. */
  metadata: string;
  createdAt: string;
  updatedAt: string;
  lastActiveAt: string;
  stoppedAt: string | null;
  /** JSON network policy (allow_internet_access, allow_out, deny_out); null = internet, no rules. */
  network: ColumnType<string | null, string | null | undefined, string | null>;
  /** 1: its ports answer anyone; 0: only with its traffic access token. */
  publicTraffic: Generated<number>;
  /** 1: traffic through the sandbox routes resumes it when paused. */
  autoResume: Generated<number>;
}

export interface TemplatesTable {
  id: string;
  teamId: string;
  name: string;
  sourceSandboxId: string | null;
  hostId: string | null;
  baseTemplate: string;
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  createdAt: string;
  /** `snapshot` (of a sandbox), `template` (built from a recipe) or `layer` (a build's cached step). */
  kind: ColumnType<TemplateKind, TemplateKind | undefined, TemplateKind>;
  /** A built template's version: 1 for the first build of a name, then one more per build. */
  version: ColumnType<number, number | undefined, number>;
  /** A layer's cache key: the hash of its parent, its step and the step's inputs. */
  cacheKey: ColumnType<string | null, string | null | undefined, string | null>;
  /** A built template's config (JSON): its start command and process defaults. */
  config: ColumnType<string | null, string | null | undefined, string | null>;
  /** The row whose layers this one stacks on (a snapshot of a sandbox made from a snapshot). */
  parentId: ColumnType<string | null, string | null | undefined, string | null>;
  /** KiB of this row's own layer on a host (null: made before this was recorded). */
  sizeKib: ColumnType<number | null, number | null | undefined, number | null>;
  /** A build layer: when a build last made or reused it (the cache evicts the oldest first). */
  usedAt: ColumnType<string | null, string | null | undefined, string | null>;
  /** A built template: JSON array of the layer ids its build went through (cached or made). */
  buildLayers: ColumnType<string | null, string | null | undefined, string | null>;
}

export type TemplateKind = "snapshot" | "template" | "layer";

export interface HostsTable {
  id: string;
  /** The agent's advertised URL. */
  address: string;
  state: string;
  /** The team a BYOC host serves; null for a shared host (every team). */
  teamId: string | null;
  hostname: string | null;
  version: string | null;
  /** JSON array of runtime names. */
  runtimes: string;
  defaultRuntime: string | null;
  /** JSON array of `{name, accel}`: microvm's accel is "kvm" or "tcg". */
  runtimeDetails: string | null;
  /** JSON object describing what the host can hold. */
  capacity: string;
  /** JSON object: what the agent last reported running. */
  usage: string | null;
  sandboxCidr: string | null;
  /** The agent process that heartbeats for this host (two claiming one id conflict). */
  instanceId: string | null;
  /** The bearer the server presents to the agent, sealed (AES-GCM) with the server secret. */
  agentKey: string | null;
  /** PEM the agent serves HTTPS with; pinned for calls to it. */
  tlsCert: string | null;
  createdAt: string;
  lastSeenAt: string | null;
}

export interface HostRefreshTokensTable {
  id: string;
  hostId: string;
  tokenHash: string;
  expiresAt: string;
  createdAt: string;
  parentId: string | null;
  successorId: string | null;
  /** When a host JWT issued with this token was first used; the parent is revoked then. */
  activatedAt: string | null;
}

export interface HostRegistrationTokensTable {
  id: string;
  tokenHash: string;
  /** The team the host will serve; null for a shared host. */
  teamId: string | null;
  createdByTeam: string;
  expiresAt: string;
  usedAt: string | null;
  hostId: string | null;
  createdAt: string;
}

/** Which hosts hold a copy of a snapshot. */
export interface TemplateHostsTable {
  templateId: string;
  hostId: string;
  createdAt: string;
}

/** A single-use invitation into a team; only the token's hash is stored. */
export interface TeamInvitesTable {
  id: string;
  teamId: string;
  tokenHash: string;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
}

/** A short-lived, single-use WebSocket ticket for one sandbox (browsers cannot set headers). */
export interface WsTicketsTable {
  ticketHash: string;
  teamId: string;
  sandboxId: string;
  expiresAt: string;
}

/** An admin's per-team override of the WRENN_TEAM_* quota defaults (JSON object). */
export interface TeamQuotasTable {
  teamId: string;
  limits: string;
  updatedAt: string;
}

export interface DatabaseSchema {
  users: UsersTable;
  teams: TeamsTable;
  usersTeams: UsersTeamsTable;
  teamApiKeys: TeamApiKeysTable;
  sandboxes: SandboxesTable;
  templates: TemplatesTable;
  hosts: HostsTable;
  hostRefreshTokens: HostRefreshTokensTable;
  hostRegistrationTokens: HostRegistrationTokensTable;
  templateHosts: TemplateHostsTable;
  teamInvites: TeamInvitesTable;
  wsTickets: WsTicketsTable;
  teamQuotas: TeamQuotasTable;
}

export type UserRow = Selectable<UsersTable>;
export type TeamRow = Selectable<TeamsTable>;
export type ApiKeyRow = Selectable<TeamApiKeysTable>;
export type SandboxRowRaw = Selectable<SandboxesTable>;
export type TemplateRow = Selectable<TemplatesTable>;
export type NewTemplateRow = Insertable<TemplatesTable>;
export type HostRowRaw = Selectable<HostsTable>;
export type HostRefreshTokenRow = Selectable<HostRefreshTokensTable>;
export type HostRegistrationTokenRow = Selectable<HostRegistrationTokensTable>;
