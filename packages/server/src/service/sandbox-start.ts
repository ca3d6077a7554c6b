import { isId, type NewSandbox, nowIso, type Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import type { CreateSandboxInput } from "./sandbox-types.js";

/** What a new sandbox starts from, as the agent and the sandbox's row name it. */
export interface SandboxStart {
  /** What the agent is asked for: a base template's name, or a row id (snapshot, built template). */
  template: string;
  /** The row it starts from, when it starts from one. */
  snapshotId: string | null;
  /** What the caller named, as the row records it. */
  shown: string;
  /** 0: the host's default. */
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
}

/**
 * Resolves a create's `template` or `snapshot` against the team's rows. Agents name snapshots by
 * row id, and an agent resolves a template name to a snapshot first: an id-shaped template is
 * only ever the caller's own row, else it is not found exactly like a missing one (another
 * team's snapshot must not be reachable through `template`).
 */
export async function resolveStart(
  store: Store,
  teamId: string,
  input: CreateSandboxInput,
  defaultTemplate: string,
): Promise<SandboxStart> {
  const { vcpus = 0, memoryMb = 0, diskSizeMb = 0 } = input;
  if (input.snapshot !== undefined) {
    const snapshot = await store.templates.getByName(teamId, input.snapshot, "snapshot");
    if (!snapshot)
      throw new ServerError("not_found", `snapshot ${JSON.stringify(input.snapshot)} not found`);
    // Agent-side snapshot names are global to the host; the row id keeps teams apart.
    return {
      template: snapshot.id,
      snapshotId: snapshot.id,
      shown: input.snapshot,
      vcpus: snapshot.vcpus,
      memoryMb: snapshot.memoryMb,
      diskSizeMb: snapshot.diskSizeMb,
    };
  }
  const template = input.template ?? defaultTemplate;
  // A team's built template by name (its newest version), or a snapshot, build layer or version
  // by id: created like a snapshot, so it is copied to whichever host runs the sandbox, and what
  // is made from the sandbox (a build's layers) records what it stacks on. A name may look like
  // an id: by id first, then by name.
  const row =
    (isId(template) ? await store.templates.get(teamId, template) : undefined) ??
    (await store.templates.getByName(teamId, template, "template"));
  if (!row) {
    if (isId(template))
      throw new ServerError("not_found", `template ${JSON.stringify(template)} not found`);
    return { template, snapshotId: null, shown: template, vcpus, memoryMb, diskSizeMb };
  }
  return {
    template: row.id,
    snapshotId: row.id,
    shown: template,
    vcpus: vcpus || row.vcpus,
    memoryMb: memoryMb || row.memoryMb,
    diskSizeMb: diskSizeMb || row.diskSizeMb,
  };
}

/** The row a create records first, as pending, so one that dies half-way is reconciled. */
export function pendingRow(
  id: string,
  teamId: string,
  hostId: string,
  input: CreateSandboxInput,
  start: SandboxStart,
): NewSandbox {
  const now = nowIso();
  return {
    id,
    teamId,
    hostId,
    template: start.shown,
    ...(input.runtime ? { runtime: input.runtime } : {}),
    snapshotId: start.snapshotId,
    state: "pending",
    vcpus: start.vcpus,
    memoryMb: start.memoryMb,
    diskSizeMb: start.diskSizeMb,
    timeoutSec: input.timeoutSec ?? 0,
    metadata: input.metadata ?? {},
    network: {
      allowInternetAccess: input.allowInternetAccess ?? true,
      allowOut: input.allowOut ?? [],
      denyOut: input.denyOut ?? [],
    },
    createdAt: now,
    updatedAt: now,
    lastActiveAt: now,
    stoppedAt: null,
    publicTraffic: input.publicTraffic ?? true,
    autoResume: input.autoResume ?? false,
  };
}
