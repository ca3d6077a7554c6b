import type { ConnectionOpts } from "../config/index.js";
import { NotFoundError } from "../errors/index.js";
import { ApiClient, type RequestOpts, requestOpts } from "../http/index.js";
import { Paginator } from "../pagination/index.js";

/** A team snapshot: a sandbox's filesystem frozen into a template new sandboxes start from. */
export interface SnapshotInfo {
  snapshotId: string;
  /** The name to pass as `Sandbox.create({ snapshot })`. */
  name: string;
  /** The template the snapshotted sandbox was made from. */
  baseTemplate: string;
  sourceSandboxId?: string;
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  createdAt: Date;
}

/** The server's snake_case snapshot. */
export interface WireSnapshot {
  id: string;
  name: string;
  base_template: string;
  source_sandbox_id: string | null;
  vcpus: number;
  memory_mb: number;
  disk_size_mb: number;
  created_at: string;
}

export function snapshotFromWire(s: WireSnapshot): SnapshotInfo {
  return {
    snapshotId: s.id,
    name: s.name,
    baseTemplate: s.base_template,
    ...(s.source_sandbox_id ? { sourceSandboxId: s.source_sandbox_id } : {}),
    vcpus: s.vcpus,
    memoryMb: s.memory_mb,
    diskSizeMb: s.disk_size_mb,
    createdAt: new Date(s.created_at),
  };
}

/** The team's snapshots. Make one with `sandbox.createSnapshot(name)`. */
export class Snapshot {
  private constructor() {}

  /** Every snapshot of the team (iterate with `for await`, or `.toArray()`). */
  static list(opts: ConnectionOpts & RequestOpts = {}): Paginator<SnapshotInfo> {
    return new Paginator(async () => {
      const client = await ApiClient.fromOptions(opts);
      const answer = await client.json<{ snapshots: WireSnapshot[] }>({
        method: "GET",
        path: "/v1/snapshots",
        ...requestOpts(opts),
      });
      return { items: answer.snapshots.map(snapshotFromWire), nextCursor: undefined };
    });
  }

  /** Deletes a snapshot by name or id; false when it did not exist. */
  static async delete(name: string, opts: ConnectionOpts & RequestOpts = {}): Promise<boolean> {
    const client = await ApiClient.fromOptions(opts);
    try {
      await client.json({
        method: "DELETE",
        path: `/v1/snapshots/${encodeURIComponent(name)}`,
        ...requestOpts(opts),
      });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }
}
