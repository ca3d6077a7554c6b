import { StepTimer } from "../../logger/index.js";
import { checkForkTargets, createForks, forkSpec, withForkLayer } from "../fork-layers.js";
import { expectState, serialize } from "../sandbox-table.js";
import type { ForkResult, ForkTarget, SandboxInfo, SandboxSpec } from "../types.js";
import type { NamespaceParts } from "./parts.js";
import { freezeUpper, sweepNamespaceForkLayers } from "./snapshots.js";

/**
 * Forks a running sandbox: its upper layer frozen (cgroup freezer, for the copy only) into a
 * fork layer, and each target created from that layer as from a snapshot. Processes are not
 * carried over (no checkpointing here): each fork starts with a fresh envd.
 */
export async function forkSandbox(
  ns: NamespaceParts,
  id: string,
  targets: ForkTarget[],
  create: (spec: SandboxSpec) => Promise<SandboxInfo>,
  destroy: (id: string) => Promise<void>,
): Promise<ForkResult> {
  checkForkTargets(targets);
  const live = ns.sandboxes.get(id);
  const timer = new StepTimer();
  return withForkLayer(
    async (layer) => {
      await serialize(live, async () => {
        expectState(live, "running", "fork");
        await freezeUpper(ns, live, layer, timer);
      });
      const { record } = live;
      const sandboxes = await timer.step("create", () =>
        createForks(targets, (target) => create(forkSpec(record, layer, target)), destroy),
      );
      const { freeze = 0, copy = 0, thaw = 0 } = timer.steps;
      const sourcePauseMs = Math.round(freeze + copy + thaw);
      ns.logger.info(
        {
          op: "fork",
          sandboxId: id,
          count: targets.length,
          sourcePauseMs,
          ms: timer.ms,
          steps: timer.steps,
        },
        "sandbox forked",
      );
      return { sandboxes, sourcePauseMs };
    },
    () => sweepNamespaceForkLayers(ns),
  );
}
