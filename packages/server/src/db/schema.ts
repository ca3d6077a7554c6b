import type { Selectable } from "kysely";

// Column types are chosen to read back identically from SQLite and PostgreSQL: text ids,
// ISO-8601 text times, integers for numbers and flags, JSON kept as text. Property names are
// camelCase here; CamelCasePlugin maps them to the snake_case columns of the migrations.

export interface UsersTable {
  id: string;
  email: string;
  passwordHash: string;
  createdAt: string;
}

export interface TeamsTable {
  id: string;
  name: string;
  createdAt: string;
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
}

export interface HostsTable {
  id: string;
  address: string;
  state: string;
  /** JSON array of runtime names. */
  runtimes: string;
  /** JSON object describing what the host can hold. */
  capacity: string;
  createdAt: string;
  lastSeenAt: string | null;
}

export interface HostRefreshTokensTable {
  id: string;
  hostId: string;
  tokenHash: string;
  expiresAt: string;
  createdAt: string;
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
}

export type UserRow = Selectable<UsersTable>;
export type TeamRow = Selectable<TeamsTable>;
export type ApiKeyRow = Selectable<TeamApiKeysTable>;
export type SandboxRowRaw = Selectable<SandboxesTable>;
export type TemplateRow = Selectable<TemplatesTable>;
export type HostRowRaw = Selectable<HostsTable>;
export type HostRefreshTokenRow = Selectable<HostRefreshTokensTable>;
