import type { Readable } from "node:stream";
import { crashPoint } from "../../crash/index.js";
import { AgentError } from "../../errors.js";
import { StepTimer } from "../../logger/index.js";
import { assertSafeName, type TemplateInfo } from "../../template/index.js";
import { isForkLayer, sweepForkLayers } from "../fork-layers.js";
import { serialize } from "../sandbox-table.js";
import type { SnapshotInfo } from "../types.js";
import type { Live, NamespaceParts } from "./parts.js";

/** Freezes the sandbox's upper layer into a new read-only template; the sandbox keeps going. */
export async function snapshotSandbox(
  ns: NamespaceParts,
  id: string,
  name: string,
): Promise<SnapshotInfo> {
  assertSafeName(name, "snapshot name");
  const live = ns.sandboxes.get(id);
  return serialize(live, async () => {
    if (live.state !== "running" && live.state !== "paused") {
      throw new AgentError("failed_precondition", `sandbox ${id} is ${live.state}`);
    }
    const timer = new StepTimer();
    const template = await freezeUpper(ns, live, name, timer);
    ns.logger.info(
      { op: "snapshot", sandboxId: id, snapshot: name, ms: timer.ms, steps: timer.steps },
      "snapshot created",
    );
    await ns.state.writeSnapshot(name, { sourceSandboxId: id });
    crashPoint("snapshot:record");
    return snapshotInfo(ns, template);
  });
}

/**
 * The sandbox's upper layer copied into a new snapshot template stacked on its own; a running
 * sandbox is frozen for the copy only, so the snapshot is one consistent moment.
 */
export async function freezeUpper(
  ns: NamespaceParts,
  live: Live,
  name: string,
  timer: StepTimer,
): Promise<TemplateInfo> {
  const wasRunning = live.state === "running";
  if (wasRunning) await timer.step("freeze", () => live.cgroup!.freeze());
  crashPoint("snapshot:freeze");
  try {
    const template = await timer.step("copy", () =>
      ns.templateStore.writeSnapshotTemplate({
        name,
        parent: live.record.template,
        fromDir: live.disk!.upperDir,
        vcpus: live.record.vcpus,
        memoryMb: live.record.memoryMb,
        diskSizeMb: live.record.diskSizeMb,
      }),
    );
    crashPoint("snapshot:copy");
    return template;
  } finally {
    if (wasRunning) await timer.step("thaw", () => live.cgroup!.thaw());
  }
}

export async function deleteSnapshot(ns: NamespaceParts, name: string): Promise<void> {
  assertSafeName(name, "snapshot name");
  const template = await ns.templateStore.getTemplate(name);
  if (template.kind !== "snapshot") {
    throw new AgentError("failed_precondition", `${name} is a template, not a snapshot`);
  }
  // Ready sandboxes stacked on it are nobody's yet: they go, and the pool stops keeping it.
  const errors = await ns.warm.forget(name, (live) => live.record.layers.includes(name));
  if (errors.length > 0) ns.logger.warn({ snapshot: name, errors }, "warm pool: discard failed");
  const users = ns.sandboxes.usersOf(name);
  if (users.length > 0) {
    throw new AgentError(
      "failed_precondition",
      `snapshot ${name} is in use by sandbox(es) ${users.join(", ")}`,
    );
  }
  await ns.templateStore.deleteTemplate(name);
  await ns.state.removeSnapshot(name);
  // It may have been the last thing standing on a fork layer.
  if (template.layers.some(isForkLayer)) await sweepNamespaceForkLayers(ns);
}

/** Removes the fork layers no sandbox, snapshot or fork under way stands on. */
export async function sweepNamespaceForkLayers(ns: NamespaceParts): Promise<void> {
  const all = await ns.templateStore.listTemplates();
  await sweepForkLayers(
    all.map((t) => t.name),
    (layer) =>
      ns.sandboxes.usersOf(layer).length > 0 ||
      all.some((t) => t.name !== layer && t.layers.includes(layer)),
    async (layer) => {
      await ns.templateStore.deleteTemplate(layer);
      await ns.state.removeSnapshot(layer);
    },
    ns.logger,
  );
}

/** A snapshot as a tar stream, for another host to import. */
export async function exportSnapshot(
  ns: NamespaceParts,
  name: string,
): Promise<{ info: SnapshotInfo; archive: Readable }> {
  assertSafeName(name, "snapshot name");
  const template = await ns.templateStore.getTemplate(name);
  if (template.kind !== "snapshot") {
    throw new AgentError("not_found", `snapshot ${name} not found (${name} is a template)`);
  }
  const { archive } = await ns.templateStore.exportTemplate(name);
  return { info: await snapshotInfo(ns, template), archive };
}

/** Installs a snapshot exported by another host: whole or not at all. */
export async function importSnapshot(
  ns: NamespaceParts,
  name: string,
  archive: Readable,
  meta: { sourceSandboxId: string },
): Promise<SnapshotInfo> {
  const template = await ns.templateStore.importSnapshotTemplate(name, archive);
  await ns.state.writeSnapshot(name, { sourceSandboxId: meta.sourceSandboxId });
  ns.logger.info(
    { op: "import", snapshot: name, sizeBytes: template.sizeBytes },
    "snapshot imported",
  );
  return snapshotInfo(ns, template);
}

export async function listSnapshots(ns: NamespaceParts): Promise<SnapshotInfo[]> {
  const all = await ns.templateStore.listTemplates();
  return Promise.all(
    all
      .filter((t) => t.kind === "snapshot" && !isForkLayer(t.name))
      .map((t) => snapshotInfo(ns, t)),
  );
}

async function snapshotInfo(ns: NamespaceParts, template: TemplateInfo): Promise<SnapshotInfo> {
  const record = await ns.state.readSnapshot(template.name);
  return {
    name: template.name,
    baseTemplate: template.layers[1] ?? "",
    sourceSandboxId: record?.sourceSandboxId ?? "",
    vcpus: template.vcpus ?? 0,
    memoryMb: template.memoryMb ?? 0,
    diskSizeMb: template.diskSizeMb ?? 0,
    sizeBytes: template.sizeBytes,
    createdAt: new Date(template.createdAt),
    sandboxCount: ns.sandboxes.usersOf(template.name).length,
  };
}
