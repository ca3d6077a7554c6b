import { type Expression, type SqlBool, sql } from "kysely";
import { ServerError } from "../../errors.js";
import type { DialectName } from "../connect.js";
import type { SandboxRowRaw } from "../schema.js";
import { prepared } from "./prepared.js";
import type { Executor } from "./types.js";

export const SANDBOX_STATES = [
  "pending",
  "running",
  "paused",
  "stopped",
  "missing",
  "error",
] as const;
export type SandboxState = (typeof SANDBOX_STATES)[number];

/** States that hold a host's resources (a missing sandbox may come back). */
const COMMITTED: readonly SandboxState[] = ["pending", "running", "paused", "missing"];

export interface HostCommitment {
  count: number;
  vcpus: number;
  memoryMb: number;
}

/** What a sandbox may reach: nothing without internet access, else what its rules let out. */
export interface SandboxNetwork {
  allowInternetAccess: boolean;
  allowOut: string[];
  denyOut: string[];
}

/** A sandbox as the rest of the server sees it: JSON parsed, state typed. */
export interface SandboxRecord
  extends Omit<SandboxRowRaw, "metadata" | "state" | "network" | "publicTraffic" | "autoResume"> {
  state: SandboxState;
  runtime: string;
  metadata: Record<string, string>;
  /** Always set on what the repo returns (rows written before it read as open). */
  network?: SandboxNetwork;
  /** Its ports answer anyone (else only with its traffic access token). */
  publicTraffic: boolean;
  /** Traffic through the sandbox routes resumes it when paused. */
  autoResume: boolean;
}

/** A row to insert: the runtime may be unknown until the agent answers; flags default. */
export type NewSandbox = Omit<SandboxRecord, "runtime" | "publicTraffic" | "autoResume"> & {
  runtime?: string;
  publicTraffic?: boolean;
  autoResume?: boolean;
};

const OPEN_NETWORK: SandboxNetwork = { allowInternetAccess: true, allowOut: [], denyOut: [] };

function networkToJson(n: SandboxNetwork): string {
  return JSON.stringify({
    allow_internet_access: n.allowInternetAccess,
    allow_out: n.allowOut,
    deny_out: n.denyOut,
  });
}

function networkFromJson(text: string | null): SandboxNetwork {
  if (!text) return { ...OPEN_NETWORK };
  const raw = JSON.parse(text) as {
    allow_internet_access?: boolean;
    allow_out?: string[];
    deny_out?: string[];
  };
  return {
    allowInternetAccess: raw.allow_internet_access !== false,
    allowOut: raw.allow_out ?? [],
    denyOut: raw.deny_out ?? [],
  };
}

export type SandboxPatch = Partial<
  Pick<
    SandboxRecord,
    | "state"
    | "hostId"
    | "runtime"
    | "vcpus"
    | "memoryMb"
    | "diskSizeMb"
    | "timeoutSec"
    | "lastActiveAt"
    | "stoppedAt"
  >
>;

export interface ListSandboxesQuery {
  teamId: string;
  states?: readonly SandboxState[];
  /** Every pair must match exactly. */
  metadata?: Record<string, string>;
  limit: number;
  /** An opaque `nextCursor` from the previous page. */
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  /** Absent on the last page. */
  nextCursor?: string;
}

/** Sandboxes; every read that a client can trigger is scoped by team. */
export class SandboxesRepo {
  /** The read behind every sandbox request (GET, exec, files): compiled once. */
  private readonly selectOne;
  private readonly setLastActive;

  constructor(
    private readonly db: Executor,
    private readonly dialect: DialectName,
  ) {
    this.selectOne = prepared(db, 2, (teamId: string, id: string) =>
      db.selectFrom("sandboxes").selectAll().where("teamId", "=", teamId).where("id", "=", id),
    );
    this.setLastActive = prepared(db, 2, (id: string, lastActiveAt: string) =>
      db
        .updateTable("sandboxes")
        .set({ lastActiveAt })
        .where("id", "=", id)
        .where("lastActiveAt", "<", lastActiveAt),
    );
  }

  async insert(sandbox: NewSandbox): Promise<SandboxRecord> {
    const publicTraffic = sandbox.publicTraffic ?? true;
    const autoResume = sandbox.autoResume ?? false;
    await this.db
      .insertInto("sandboxes")
      .values({
        ...sandbox,
        metadata: JSON.stringify(sandbox.metadata),
        network: sandbox.network ? networkToJson(sandbox.network) : null,
        publicTraffic: publicTraffic ? 1 : 0,
        autoResume: autoResume ? 1 : 0,
      })
      .execute();
    return {
      ...sandbox,
      runtime: sandbox.runtime ?? "namespace",
      network: sandbox.network ?? { ...OPEN_NETWORK },
      publicTraffic,
      autoResume,
    };
  }

  async get(teamId: string, id: string): Promise<SandboxRecord | undefined> {
    const [row] = await this.selectOne(teamId, id);
    return row && fromRow(row);
  }

  /**
   * Records activity at `at`, never moving `last_active_at` back and leaving `updated_at` alone
   * (activity is not a change of the sandbox).
   */
  async touch(id: string, at: string): Promise<void> {
    await this.setLastActive(id, at);
  }

  /** Unscoped lookup, for the reconciler and host-side callers only. */
  async getById(id: string): Promise<SandboxRecord | undefined> {
    const row = await this.db
      .selectFrom("sandboxes")
      .selectAll()
      .where("id", "=", id)
      .executeTakeFirst();
    return row && fromRow(row);
  }

  /** One page in creation order (`created_at`, then `id`), after `cursor`. */
  async list(query: ListSandboxesQuery): Promise<Page<SandboxRecord>> {
    let q = this.db.selectFrom("sandboxes").selectAll().where("teamId", "=", query.teamId);
    if (query.states && query.states.length > 0) q = q.where("state", "in", query.states);
    for (const [key, value] of Object.entries(query.metadata ?? {})) {
      q = q.where(this.metadataEquals(key, value));
    }
    if (query.cursor) {
      const [createdAt, id] = decodeCursor(query.cursor);
      q = q.where((eb) =>
        eb.or([
          eb("createdAt", ">", createdAt),
          eb.and([eb("createdAt", "=", createdAt), eb("id", ">", id)]),
        ]),
      );
    }
    const rows = await q
      .orderBy("createdAt", "asc")
      .orderBy("id", "asc")
      .limit(query.limit + 1)
      .execute();
    const items = rows.slice(0, query.limit).map(fromRow);
    const last = items.at(-1);
    return rows.length > query.limit && last
      ? { items, nextCursor: encodeCursor(last.createdAt, last.id) }
      : { items };
  }

  /** Sandboxes a host holds in any of `states` (all teams): what the reconciler compares. */
  async listByHost(hostId: string, states: readonly SandboxState[]): Promise<SandboxRecord[]> {
    const rows = await this.db
      .selectFrom("sandboxes")
      .selectAll()
      .where("hostId", "=", hostId)
      .where("state", "in", states)
      .orderBy("createdAt", "asc")
      .execute();
    return rows.map(fromRow);
  }

  /**
   * The team's sandboxes started from any of the templates `ids` whose host answers (a missing
   * one's host cannot be asked to keep the template), oldest first.
   */
  async startedFrom(teamId: string, ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .selectFrom("sandboxes")
      .select("id")
      .where("teamId", "=", teamId)
      .where("snapshotId", "in", ids)
      .where("state", "in", ["pending", "running", "paused"])
      .orderBy("createdAt", "asc")
      .execute();
    return rows.map((r) => r.id);
  }

  /** What each host has committed to its live sandboxes: the scheduler's load figures. */
  async committedByHost(): Promise<Map<string, HostCommitment>> {
    const rows = await this.db
      .selectFrom("sandboxes")
      .select((eb) => [
        "hostId",
        eb.fn.countAll<number | string>().as("count"),
        eb.fn.sum<number | string | null>("vcpus").as("vcpus"),
        eb.fn.sum<number | string | null>("memoryMb").as("memoryMb"),
      ])
      .where("state", "in", COMMITTED)
      .where("hostId", "is not", null)
      .groupBy("hostId")
      .execute();
    return new Map(
      rows.map((r) => [
        r.hostId as string,
        { count: Number(r.count), vcpus: Number(r.vcpus ?? 0), memoryMb: Number(r.memoryMb ?? 0) },
      ]),
    );
  }

  /** The host's live sandboxes become `missing` (reversible); returns their ids. */
  async markHostMissing(hostId: string, at: string): Promise<string[]> {
    const rows = await this.db
      .updateTable("sandboxes")
      .set({ state: "missing", updatedAt: at })
      .where("hostId", "=", hostId)
      .where("state", "in", ["pending", "running", "paused"])
      .returning("id")
      .execute();
    return rows.map((r) => r.id);
  }

  /** Every sandbox still on the host becomes `stopped` (the host is being removed). */
  async markHostStopped(hostId: string, at: string): Promise<void> {
    await this.db
      .updateTable("sandboxes")
      .set({ state: "stopped", stoppedAt: at, updatedAt: at })
      .where("hostId", "=", hostId)
      .where("state", "in", COMMITTED)
      .execute();
  }

  /** Applies `patch` (and bumps `updated_at`); undefined when the team has no such sandbox. */
  async update(
    teamId: string,
    id: string,
    patch: SandboxPatch,
    updatedAt: string,
  ): Promise<SandboxRecord | undefined> {
    const result = await this.db
      .updateTable("sandboxes")
      .set({ ...patch, updatedAt })
      .where("teamId", "=", teamId)
      .where("id", "=", id)
      .executeTakeFirst();
    if (result.numUpdatedRows === 0n) return undefined;
    return this.get(teamId, id);
  }

  /** Records a sandbox's network policy; false when the team has no such sandbox. */
  async setNetwork(teamId: string, id: string, network: SandboxNetwork, updatedAt: string) {
    const result = await this.db
      .updateTable("sandboxes")
      .set({ network: networkToJson(network), updatedAt })
      .where("teamId", "=", teamId)
      .where("id", "=", id)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Applies `patch` only while the row is still in state `from` (the reconciler's compare-and-set,
   * so an API call that changed the row since the agent was asked wins). True when applied.
   */
  async transition(
    id: string,
    from: SandboxState,
    patch: SandboxPatch,
    updatedAt: string,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable("sandboxes")
      .set({ ...patch, updatedAt })
      .where("id", "=", id)
      .where("state", "=", from)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /** Deletes stopped rows that stopped before `before`; returns how many. */
  async pruneStopped(before: string): Promise<number> {
    const result = await this.db
      .deleteFrom("sandboxes")
      .where("state", "=", "stopped")
      .where("stoppedAt", "<", before)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async delete(teamId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom("sandboxes")
      .where("teamId", "=", teamId)
      .where("id", "=", id)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  private metadataEquals(key: string, value: string): Expression<SqlBool> {
    // Metadata is JSON text; each engine reads a key out of it its own way. json_each takes any
    // key verbatim, where a JSON path would need quoting.
    if (this.dialect === "postgres") {
      return sql<SqlBool>`(${sql.ref("sandboxes.metadata")}::jsonb ->> ${key}) = ${value}`;
    }
    return sql<SqlBool>`exists (select 1 from json_each(${sql.ref("sandboxes.metadata")}) as m where m.key = ${key} and m.value = ${value})`;
  }
}

function fromRow(row: SandboxRowRaw): SandboxRecord {
  return {
    ...row,
    state: row.state as SandboxState,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    network: networkFromJson(row.network),
    publicTraffic: Number(row.publicTraffic) !== 0,
    autoResume: Number(row.autoResume) !== 0,
  };
}

function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString("base64url");
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === "string" &&
      typeof value[1] === "string" &&
      // PostgreSQL refuses NUL in text; a cursor we issued never has control characters.
      !/\p{Cc}/u.test(value[0] + value[1])
    ) {
      return [value[0], value[1]];
    }
  } catch {
    // Falls through to the error below: a cursor the client made up.
  }
  throw new ServerError("invalid_argument", "cursor: not a cursor this server issued");
}
