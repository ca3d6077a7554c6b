import type { Insertable } from "kysely";
import type {
  HostRefreshTokenRow,
  HostRefreshTokensTable,
  HostRegistrationTokenRow,
  HostRowRaw,
  HostsTable,
} from "../schema.js";
import type { Executor } from "./types.js";

/**
 * `ready`: takes new sandboxes; `draining`: keeps its sandboxes, takes no new ones;
 * `unreachable`: no heartbeat within the stale window (its sandboxes are `missing`);
 * `offline`: stopped cleanly (the embedded agent of a stopped single-host server).
 */
export type HostState = "ready" | "draining" | "unreachable" | "offline";

export interface HostCapacity {
  vcpus: number;
  memory_mb: number;
  disk_mb: number;
  max_sandboxes: number;
}

/** A host as the rest of the server sees it: JSON parsed. */
/** How a host runs one runtime: microvm's `accel` is "kvm" or "tcg"; "" for namespace. */
export interface RuntimeDetail {
  name: string;
  accel: string;
}

export interface HostRecord
  extends Omit<HostRowRaw, "runtimes" | "capacity" | "state" | "usage" | "runtimeDetails"> {
  state: HostState;
  runtimes: string[];
  runtimeDetails: RuntimeDetail[];
  capacity: Partial<HostCapacity>;
  usage: Record<string, number>;
}

/** What a new host must say; the rest (owner, identity, credentials) may come later or never. */
export type NewHost = Pick<
  HostRecord,
  "id" | "address" | "state" | "runtimes" | "capacity" | "createdAt" | "lastSeenAt"
> &
  Partial<HostRecord>;

/** Hosts (agents), their registration tokens and the refresh tokens they rotate. */
export class HostsRepo {
  constructor(private readonly db: Executor) {}

  /** Inserts the host, or replaces what is known about it (the embedded agent at each start). */
  async upsert(host: NewHost): Promise<void> {
    const row = toRow(host);
    const { id: _id, createdAt: _createdAt, ...changes } = row;
    await this.db
      .insertInto("hosts")
      .values(row)
      .onConflict((oc) => oc.column("id").doUpdateSet(changes))
      .execute();
  }

  async get(id: string): Promise<HostRecord | undefined> {
    const row = await this.db
      .selectFrom("hosts")
      .selectAll()
      .where("id", "=", id)
      .executeTakeFirst();
    return row && fromRow(row);
  }

  async list(): Promise<HostRecord[]> {
    const rows = await this.db
      .selectFrom("hosts")
      .selectAll()
      .orderBy("createdAt")
      .orderBy("id")
      .execute();
    return rows.map(fromRow);
  }

  async markSeen(id: string, state: HostState, at: string): Promise<void> {
    await this.db
      .updateTable("hosts")
      .set({ state, lastSeenAt: at })
      .where("id", "=", id)
      .execute();
  }

  /** Seen now, state unchanged (the embedded agent, which has no heartbeat of its own). */
  async touch(id: string, at: string): Promise<void> {
    await this.db.updateTable("hosts").set({ lastSeenAt: at }).where("id", "=", id).execute();
  }

  /** A heartbeat: seen now, what it runs; an unreachable host comes back as ready. */
  async heartbeat(
    id: string,
    patch: { instanceId: string; address?: string; usage: Record<string, number>; at: string },
  ): Promise<void> {
    await this.db
      .updateTable("hosts")
      .set({
        instanceId: patch.instanceId,
        usage: JSON.stringify(patch.usage),
        lastSeenAt: patch.at,
        ...(patch.address ? { address: patch.address } : {}),
      })
      .where("id", "=", id)
      .execute();
    await this.db
      .updateTable("hosts")
      .set({ state: "ready" })
      .where("id", "=", id)
      .where("state", "in", ["unreachable", "offline"])
      .execute();
  }

  /** Sets `state` only while the host is in one of `from`; true when it changed. */
  async transition(id: string, from: readonly HostState[], state: HostState): Promise<boolean> {
    const result = await this.db
      .updateTable("hosts")
      .set({ state })
      .where("id", "=", id)
      .where("state", "in", from)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /** Hosts in `ready`/`draining` whose last heartbeat is older than `before`. */
  async listStale(before: string): Promise<HostRecord[]> {
    const rows = await this.db
      .selectFrom("hosts")
      .selectAll()
      .where("state", "in", ["ready", "draining"])
      .where((eb) => eb.or([eb("lastSeenAt", "is", null), eb("lastSeenAt", "<", before)]))
      .execute();
    return rows.map(fromRow);
  }

  async delete(id: string): Promise<void> {
    await this.db.deleteFrom("hosts").where("id", "=", id).execute();
  }

  // Registration tokens

  async insertRegistrationToken(token: HostRegistrationTokenRow): Promise<void> {
    await this.db.insertInto("hostRegistrationTokens").values(token).execute();
  }

  findRegistrationToken(tokenHash: string): Promise<HostRegistrationTokenRow | undefined> {
    return this.db
      .selectFrom("hostRegistrationTokens")
      .selectAll()
      .where("tokenHash", "=", tokenHash)
      .executeTakeFirst();
  }

  /** Marks the token used by `hostId`; false when another registration used it first. */
  async useRegistrationToken(id: string, hostId: string, at: string): Promise<boolean> {
    const result = await this.db
      .updateTable("hostRegistrationTokens")
      .set({ usedAt: at, hostId })
      .where("id", "=", id)
      .where("usedAt", "is", null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  // Refresh tokens

  async insertRefreshToken(token: Insertable<HostRefreshTokensTable>): Promise<void> {
    await this.db.insertInto("hostRefreshTokens").values(token).execute();
  }

  /** The token with this hash if it has not expired at `now`. */
  findRefreshToken(tokenHash: string, now: string): Promise<HostRefreshTokenRow | undefined> {
    return this.db
      .selectFrom("hostRefreshTokens")
      .selectAll()
      .where("tokenHash", "=", tokenHash)
      .where("expiresAt", ">", now)
      .executeTakeFirst();
  }

  getRefreshToken(id: string): Promise<HostRefreshTokenRow | undefined> {
    return this.db
      .selectFrom("hostRefreshTokens")
      .selectAll()
      .where("id", "=", id)
      .executeTakeFirst();
  }

  async setSuccessor(id: string, successorId: string): Promise<void> {
    await this.db
      .updateTable("hostRefreshTokens")
      .set({ successorId })
      .where("id", "=", id)
      .execute();
  }

  /**
   * First use of a token's JWT: records it, which revokes the token it replaced (kept one
   * generation, so presenting it again is recognised as reuse); older generations go.
   */
  async activateRefreshToken(token: HostRefreshTokenRow, at: string): Promise<void> {
    await this.db
      .updateTable("hostRefreshTokens")
      .set({ activatedAt: at })
      .where("id", "=", token.id)
      .execute();
    if (token.parentId) {
      await this.db
        .deleteFrom("hostRefreshTokens")
        .where("successorId", "=", token.parentId)
        .execute();
    }
  }

  async deleteRefreshToken(id: string): Promise<void> {
    await this.db.deleteFrom("hostRefreshTokens").where("id", "=", id).execute();
  }

  /** Revokes the host's whole token family (and so every JWT issued with one of them). */
  async deleteRefreshTokens(hostId: string): Promise<void> {
    await this.db.deleteFrom("hostRefreshTokens").where("hostId", "=", hostId).execute();
  }

  // Snapshot copies

  async addTemplateCopy(templateId: string, hostId: string, at: string): Promise<void> {
    await this.db
      .insertInto("templateHosts")
      .values({ templateId, hostId, createdAt: at })
      .onConflict((oc) => oc.columns(["templateId", "hostId"]).doNothing())
      .execute();
  }

  async templateCopies(templateId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom("templateHosts")
      .select("hostId")
      .where("templateId", "=", templateId)
      .orderBy("createdAt")
      .execute();
    return rows.map((r) => r.hostId);
  }
}

function toRow(host: NewHost): Insertable<HostsTable> & HostRowRaw {
  return {
    teamId: null,
    hostname: null,
    version: null,
    defaultRuntime: null,
    sandboxCidr: null,
    instanceId: null,
    agentKey: null,
    tlsCert: null,
    ...host,
    runtimeDetails: JSON.stringify(host.runtimeDetails ?? []),
    runtimes: JSON.stringify(host.runtimes),
    capacity: JSON.stringify(host.capacity),
    usage: JSON.stringify(host.usage ?? {}),
  };
}

function fromRow(row: HostRowRaw): HostRecord {
  return {
    ...row,
    state: row.state as HostState,
    runtimes: JSON.parse(row.runtimes) as string[],
    runtimeDetails: row.runtimeDetails ? (JSON.parse(row.runtimeDetails) as RuntimeDetail[]) : [],
    capacity: JSON.parse(row.capacity) as Partial<HostCapacity>,
    usage: row.usage ? (JSON.parse(row.usage) as Record<string, number>) : {},
  };
}
