import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { AgentError } from "../../errors.js";
import { isSandboxAlive } from "../../launcher/index.js";
import { StepTimer } from "../../logger/index.js";
import { openNetwork } from "../../network/index.js";
import { assertSandboxId, type SandboxRecord } from "../../state/index.js";
import type { AdoptReport } from "../types.js";
import type { VmLive, VmParts } from "./parts.js";
import { QmpClient } from "./qmp.js";
import { teardownVm, vmDir } from "./vm-assembly.js";
import { vmPaths } from "./vm-store.js";

/**
 * Takes back the microVM sandboxes recorded in the state directory: running ones whose QEMU
 * answers on its QMP socket, paused ones whose saved RAM and state are there. The rest (and
 * template VMs a crash interrupted) are removed. Other runtimes' records are not touched.
 */
export async function adoptVms(vp: VmParts): Promise<AdoptReport> {
  const report: AdoptReport = { adopted: [], cleaned: [], errors: [] };
  await mkdir(vp.opts.agentDir, { recursive: true, mode: 0o700 });
  await vp.watch.ensureStarted();
  await vp.store.removeDebris().catch((err) => report.errors.push(AgentError.from(err)));
  const inUse = vp.sandboxes.resourceIds();
  for (const id of await vp.state.ids()) {
    if (inUse.has(id)) continue;
    const timer = new StepTimer();
    let record: SandboxRecord | undefined;
    try {
      assertSandboxId(id);
      record = await vp.state.read(id);
      if (record?.runtime !== vp.name) continue;
      const adoptable = record.phase === "running" || record.phase === "paused";
      if (adoptable && !record.pooled && !vp.sandboxes.has(record.id)) {
        const live = await reopen(vp, record);
        if (live) {
          vp.sandboxes.set(record.id, live);
          report.adopted.push(record.id);
          vp.logger.info(
            { op: "adopt", sandboxId: record.id, state: live.state, ms: timer.ms },
            "microVM adopted",
          );
          continue;
        }
      }
    } catch (err) {
      vp.logger.warn({ resourceId: id, err }, "microVM cannot be adopted, removing it");
    }
    const errors = await teardownVm(vp, id, record, timer);
    if (errors.length === 0) report.cleaned.push(id);
    else report.errors.push(...errors);
  }
  return report;
}

async function reopen(vp: VmParts, record: SandboxRecord): Promise<VmLive | undefined> {
  const paths = vmPaths(vmDir(vp, record.resourceId));
  let state: VmLive["state"];
  if (record.phase === "running") {
    if (!record.process || !(await isSandboxAlive(record.process))) return undefined;
    const qmp = await QmpClient.connect(paths.qmp).catch(() => undefined);
    if (!qmp) return undefined;
    try {
      const status = await qmp.execute<{ status: string }>("query-status");
      state = status.status === "running" ? "running" : "error";
    } finally {
      qmp.close();
    }
  } else {
    // An eager VM saved its RAM into the state file; a lazy one beside it.
    if (!existsSync(paths.state) || (!vp.opts.eagerRestore && !existsSync(paths.ram))) {
      return undefined;
    }
    state = "paused";
  }
  const network = await openNetwork(record.resourceId, vp.pool, record.egress);
  if (!network) return undefined;
  return { record, state, network, paths, queue: Promise.resolve() };
}
