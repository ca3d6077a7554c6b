import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AgentError } from "../errors.js";
import type { EgressRules } from "../network/egress/index.js";
import { assertSandboxId, isSandboxId } from "./sandbox-id.js";

/**
 * Where a sandbox is in its life, as recorded on disk. `creating` is written before the first
 * resource is made and `destroying` before the first is removed, so whatever a crash leaves
 * behind is found and finished on the next start.
 */
export type SandboxPhase = "creating" | "running" | "paused" | "destroying";

/**
 * `<agentDir>/sandboxes/<resourceId>/sandbox.json` (snake_case on disk, like templates).
 * Host resources (netns, veth, cgroup, disk) are named by `resourceId`; `id` is what callers see.
 */
export interface SandboxRecord {
  /** The public id; for a pooled (unclaimed) sandbox, equal to its resource id. */
  id: string;
  /** Names the sandbox's directory and host resources: the public id for a cold create. */
  resourceId: string;
  /** Made ahead of time for the warm pool and not claimed by any caller yet. */
  pooled: boolean;
  runtime: string;
  phase: SandboxPhase;
  template: string;
  /** Template layers (top first) the rootfs stacks, fixed at create. */
  layers: string[];
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  timeoutSec: number;
  allowInternetAccess: boolean;
  /** allowOut/denyOut; absent = no rules. */
  egress?: EgressRules;
  metadata: Record<string, string>;
  /** ISO-8601. */
  createdAt: string;
  autoPaused: boolean;
  /** Slot in the address pool, once allocated. */
  addressSlot?: number;
  /** The sandbox's first process, once launched. */
  process?: { pid: number; startTime: number };
  /** envd's per-sandbox access token (X-Access-Token); only the agent knows it. */
  envdAccessToken?: string;
}

const RECORD = "sandbox.json";

/** What the agent knows of a snapshot beyond its template.json. */
export interface SnapshotRecord {
  sourceSandboxId: string;
}

/** The agent's record of every sandbox it made, one directory per sandbox. */
export class StateStore {
  readonly dir: string;
  private readonly snapshotsDir: string;

  constructor(agentDir: string) {
    this.dir = join(agentDir, "sandboxes");
    this.snapshotsDir = join(agentDir, "snapshots");
  }

  /** `<agentDir>/snapshots/<name>.json`; `name` must already be a SafeName. */
  async writeSnapshot(name: string, record: SnapshotRecord): Promise<void> {
    await mkdir(this.snapshotsDir, { recursive: true, mode: 0o700 });
    const file = join(this.snapshotsDir, `${name}.json`);
    const tmp = join(this.snapshotsDir, `.${name}.${randomBytes(4).toString("hex")}`);
    await writeFile(tmp, `${JSON.stringify({ source_sandbox_id: record.sourceSandboxId })}\n`);
    await rename(tmp, file);
  }

  async readSnapshot(name: string): Promise<SnapshotRecord | undefined> {
    try {
      const raw = JSON.parse(await readFile(join(this.snapshotsDir, `${name}.json`), "utf8"));
      return { sourceSandboxId: String(raw.source_sandbox_id ?? "") };
    } catch {
      return undefined;
    }
  }

  async removeSnapshot(name: string): Promise<void> {
    await rm(join(this.snapshotsDir, `${name}.json`), { force: true });
  }

  sandboxDir(id: string): string {
    assertSandboxId(id);
    return join(this.dir, id);
  }

  /** Atomic: a crash leaves the old record or the new one, never half of one. */
  async write(record: SandboxRecord): Promise<void> {
    assertSandboxId(record.id);
    const dir = this.sandboxDir(record.resourceId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.${RECORD}.${randomBytes(4).toString("hex")}`);
    await writeFile(tmp, `${JSON.stringify(toJson(record), null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, join(dir, RECORD));
  }

  /** The record in `sandboxes/<resourceId>/`. */
  async read(resourceId: string): Promise<SandboxRecord | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.sandboxDir(resourceId), RECORD), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw AgentError.from(err);
    }
    return fromJson(resourceId, text);
  }

  /** Resource ids of every sandbox directory, including ones whose record never got written. */
  async ids(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => !n.startsWith(".")).sort();
  }

  /** Removes the sandbox's directory (its resources must already be gone). */
  async remove(resourceId: string): Promise<void> {
    await rm(this.sandboxDir(resourceId), { recursive: true, force: true });
  }
}

function toJson(r: SandboxRecord): Record<string, unknown> {
  return {
    id: r.id,
    resource_id: r.resourceId,
    pooled: r.pooled,
    runtime: r.runtime,
    phase: r.phase,
    template: r.template,
    layers: r.layers,
    vcpus: r.vcpus,
    memory_mb: r.memoryMb,
    disk_size_mb: r.diskSizeMb,
    timeout_sec: r.timeoutSec,
    allow_internet_access: r.allowInternetAccess,
    egress: r.egress ? { allow_out: r.egress.allowOut, deny_out: r.egress.denyOut } : undefined,
    metadata: r.metadata,
    created_at: r.createdAt,
    auto_paused: r.autoPaused,
    address_slot: r.addressSlot,
    process: r.process ? { pid: r.process.pid, start_time: r.process.startTime } : undefined,
    envd_access_token: r.envdAccessToken,
  };
}

function fromJson(resourceId: string, text: string): SandboxRecord {
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON, checked field by field below.
  let raw: any;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new AgentError("internal", `sandbox ${resourceId}: unreadable ${RECORD}`, { cause: err });
  }
  const phases: SandboxPhase[] = ["creating", "running", "paused", "destroying"];
  // Records from before the warm pool have no resource_id: theirs was the public id.
  const rid = raw?.resource_id ?? raw?.id;
  if (
    rid !== resourceId ||
    !isSandboxId(String(raw.id)) ||
    !phases.includes(raw.phase) ||
    !Array.isArray(raw.layers)
  ) {
    throw new AgentError("internal", `sandbox ${resourceId}: malformed ${RECORD}`);
  }
  return {
    id: raw.id,
    resourceId,
    pooled: raw.pooled === true,
    runtime: String(raw.runtime),
    phase: raw.phase,
    template: String(raw.template),
    layers: raw.layers.map(String),
    vcpus: Number(raw.vcpus),
    memoryMb: Number(raw.memory_mb),
    diskSizeMb: Number(raw.disk_size_mb),
    timeoutSec: Number(raw.timeout_sec ?? 0),
    allowInternetAccess: Boolean(raw.allow_internet_access),
    egress:
      Array.isArray(raw.egress?.allow_out) && Array.isArray(raw.egress?.deny_out)
        ? { allowOut: raw.egress.allow_out.map(String), denyOut: raw.egress.deny_out.map(String) }
        : undefined,
    metadata: raw.metadata ?? {},
    createdAt: String(raw.created_at),
    autoPaused: Boolean(raw.auto_paused),
    addressSlot: typeof raw.address_slot === "number" ? raw.address_slot : undefined,
    process:
      raw.process && typeof raw.process.pid === "number"
        ? { pid: raw.process.pid, startTime: Number(raw.process.start_time) }
        : undefined,
    envdAccessToken: typeof raw.envd_access_token === "string" ? raw.envd_access_token : undefined,
  };
}
