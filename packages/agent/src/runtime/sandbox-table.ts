import { AgentError } from "../errors.js";
import { assertSandboxId, type SandboxRecord } from "../state/index.js";
import type { SandboxInfo } from "./types.js";

/** What every runtime holds for a live sandbox. */
export interface LiveBase {
  record: SandboxRecord;
  state: SandboxInfo["state"];
  error?: string;
  /** Serializes lifecycle operations on this sandbox. */
  queue: Promise<unknown>;
}

/** A runtime's live sandboxes by public id, with the per-sandbox serialization they share. */
export class SandboxTable<L extends LiveBase> {
  private readonly byId = new Map<string, L>();

  has(id: string): boolean {
    return this.byId.has(id);
  }

  set(id: string, live: L): void {
    this.byId.set(id, live);
  }

  delete(id: string): void {
    this.byId.delete(id);
  }

  clear(): void {
    this.byId.clear();
  }

  values(): IterableIterator<L> {
    return this.byId.values();
  }

  /** not_found unless a sandbox of this id is live here. */
  get(id: string): L {
    assertSandboxId(id);
    const live = this.byId.get(id);
    if (!live) throw new AgentError("not_found", `sandbox ${id} not found`);
    return live;
  }

  /** Ids of the sandboxes whose layers include `layer` (a snapshot in use cannot go). */
  usersOf(layer: string): string[] {
    return [...this.byId.values()]
      .filter((live) => live.record.layers.includes(layer))
      .map((live) => live.record.id);
  }

  /** Resource ids in use: adopt skips their directories. */
  resourceIds(): Set<string> {
    return new Set([...this.byId.values()].map((live) => live.record.resourceId));
  }
}

export function expectState(live: LiveBase, state: SandboxInfo["state"], op: string): void {
  if (live.state !== state) {
    throw new AgentError(
      "failed_precondition",
      `cannot ${op} sandbox ${live.record.id}: it is ${live.state}`,
    );
  }
}

/** Runs `work` after every operation queued on the sandbox before it. */
export function serialize<T>(live: LiveBase, work: () => Promise<T>): Promise<T> {
  const run = live.queue.then(work, work);
  live.queue = run.catch(() => {});
  return run;
}

/** The public view of a live sandbox; `envdAddress` is "" while it has no network. */
export function sandboxInfo(runtime: string, live: LiveBase, envdAddress: string): SandboxInfo {
  const r = live.record;
  return {
    id: r.id,
    runtime,
    template: r.template,
    state: live.state,
    vcpus: r.vcpus,
    memoryMb: r.memoryMb,
    diskSizeMb: r.diskSizeMb,
    timeoutSec: r.timeoutSec,
    metadata: r.metadata,
    allowInternetAccess: r.allowInternetAccess,
    egress: r.egress ?? { allowOut: [], denyOut: [] },
    createdAt: new Date(r.createdAt),
    envdAddress,
    ...(r.envdAccessToken !== undefined && { envdAccessToken: r.envdAccessToken }),
    autoPaused: r.autoPaused,
    ...(live.error !== undefined && { error: live.error }),
  };
}
