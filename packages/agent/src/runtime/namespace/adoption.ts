import { mkdir } from "node:fs/promises";
import { openCgroup } from "../../cgroup/index.js";
import { AgentError } from "../../errors.js";
import { isSandboxAlive } from "../../launcher/index.js";
import { StepTimer } from "../../logger/index.js";
import { openNetwork } from "../../network/index.js";
import { assertSandboxId, type SandboxRecord } from "../../state/index.js";
import { openSandboxDisk } from "../../storage/index.js";
import type { AdoptReport } from "../types.js";
import { teardownSandbox } from "./assembly.js";
import { type Live, type NamespaceParts, storageDir } from "./parts.js";

/**
 * Re-adopts the namespace sandboxes recorded in the state directory and removes the debris of
 * the rest. Records of another runtime are left alone: that runtime adopts them.
 */
export async function adoptSandboxes(ns: NamespaceParts): Promise<AdoptReport> {
  const report: AdoptReport = { adopted: [], cleaned: [], errors: [] };
  await mkdir(ns.opts.agentDir, { recursive: true, mode: 0o700 });
  await ns.watch.ensureStarted();
  await ns.templateStore.removeDebris().catch((err) => report.errors.push(AgentError.from(err)));
  // Ready disks are not trusted across a restart: made again on demand.
  report.errors.push(...(await ns.disks.prune()));
  const inUse = ns.sandboxes.resourceIds();
  // Directories are named by resource id; a claimed sandbox is adopted under its public id.
  for (const id of await ns.state.ids()) {
    if (inUse.has(id)) continue;
    const timer = new StepTimer();
    let record: SandboxRecord | undefined;
    try {
      assertSandboxId(id);
      record = await ns.state.read(id);
      if (record && record.runtime !== ns.name) continue;
      // Pooled and never claimed: removed (the pool refills with fresh ones below).
      const adoptable = record?.phase === "running" || record?.phase === "paused";
      if (record && adoptable && !record.pooled && !ns.sandboxes.has(record.id)) {
        const live = await reopen(ns, record);
        if (live) {
          ns.sandboxes.set(record.id, live);
          report.adopted.push(record.id);
          ns.logger.info(
            { op: "adopt", sandboxId: record.id, resourceId: id, state: live.state, ms: timer.ms },
            "sandbox adopted",
          );
          continue;
        }
      }
    } catch (err) {
      ns.logger.warn({ resourceId: id, err }, "sandbox cannot be adopted, removing it");
    }
    const errors = await teardownSandbox(ns, id, record, timer);
    if (errors.length === 0) report.cleaned.push(id);
    else report.errors.push(...errors);
    ns.logger.info(
      {
        op: "cleanup",
        sandboxId: record?.id,
        resourceId: id,
        pooled: record?.pooled,
        phase: record?.phase,
        ms: timer.ms,
        steps: timer.steps,
        errors: errors.map(String),
      },
      "sandbox debris removed",
    );
  }
  ns.warm.fill();
  return report;
}

/** Handles of a recorded sandbox, if every part of it is still there and its envd runs. */
async function reopen(ns: NamespaceParts, record: SandboxRecord): Promise<Live | undefined> {
  if (!record.process || !(await isSandboxAlive(record.process))) return undefined;
  const rid = record.resourceId;
  const disk = await openSandboxDisk(storageDir(ns.state.sandboxDir(rid)));
  const cgroup = await openCgroup(rid);
  const network = await openNetwork(rid, ns.pool, record.egress);
  if (!disk || !cgroup || !network) {
    if (network) ns.pool.release(rid);
    return undefined;
  }
  const frozen = await cgroup.isFrozen();
  return {
    record: { ...record, phase: frozen ? "paused" : "running" },
    state: frozen ? "paused" : "running",
    disk,
    cgroup,
    network,
    queue: Promise.resolve(),
  };
}
