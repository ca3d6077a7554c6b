import { StepTimer } from "../../logger/index.js";
import {
  checkForkTargets,
  createForks,
  forkSpec,
  sweepForkLayers,
  withForkLayer,
} from "../fork-layers.js";
import { expectState, serialize } from "../sandbox-table.js";
import type { ForkResult, ForkTarget, SandboxInfo, SandboxSpec } from "../types.js";
import type { VmParts } from "./parts.js";
import { writeSnapshot } from "./vm-snapshots.js";

/**
 * Forks a running microVM with its memory and processes: the source is stopped while its device
 * state is saved and its disk and RAM copied into a fork layer (a snapshot of its own), then
 * continues; each target is restored from that layer with its own network, disk overlay, RAM
 * copy and envd token (as any create from a snapshot).
 */
export async function forkVm(
  vp: VmParts,
  id: string,
  targets: ForkTarget[],
  create: (spec: SandboxSpec) => Promise<SandboxInfo>,
  destroy: (id: string) => Promise<void>,
): Promise<ForkResult> {
  checkForkTargets(targets);
  const live = vp.sandboxes.get(id);
  const timer = new StepTimer();
  return withForkLayer(
    async (layer) => {
      await serialize(live, async () => {
        expectState(live, "running", "fork");
        await writeSnapshot(vp, live, layer, false, timer);
      });
      const { record } = live;
      const sandboxes = await timer.step("create", () =>
        createForks(targets, (target) => create(forkSpec(record, layer, target)), destroy),
      );
      // Stopped from the state save through the copy.
      const { state = 0, copy = 0 } = timer.steps;
      const sourcePauseMs = Math.round(state + copy);
      vp.logger.info(
        {
          op: "fork",
          sandboxId: id,
          count: targets.length,
          sourcePauseMs,
          ms: timer.ms,
          steps: timer.steps,
        },
        "microVM forked",
      );
      return { sandboxes, sourcePauseMs };
    },
    () => sweepVmForkLayers(vp),
  );
}

/** Removes the fork layers no VM or fork under way stands on (VM snapshots are flattened). */
export async function sweepVmForkLayers(vp: VmParts): Promise<void> {
  const all = await vp.store.listSnapshots();
  await sweepForkLayers(
    all.map((m) => m.name),
    (layer) => vp.sandboxes.usersOf(layer).length > 0,
    (layer) => vp.store.removeSnapshot(layer),
    vp.logger,
  );
}
