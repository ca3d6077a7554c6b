import { randomBytes } from "node:crypto";
import { AgentError } from "../../errors.js";
import { isSandboxAlive } from "../../launcher/index.js";
import { StepTimer } from "../../logger/index.js";
import { applyNetworkPolicy, hasEgressRules } from "../../network/index.js";
import type { SandboxRecord } from "../../state/index.js";
import { initEnvd, warmUpEnvd } from "../envd-health.js";
import { DEFAULT_LIMITS, type SandboxLimits, throwAll } from "../limits.js";
import type { SandboxSpec } from "../types.js";
import type { SizedTarget } from "../warm-pool/index.js";
import { buildSandbox, teardownSandbox } from "./assembly.js";
import { envdOf, type Live, type NamespaceParts } from "./parts.js";

const CPU_WEIGHT = 100;

/**
 * A ready sandbox from the warm pool, made the caller's: its limits, network policy and envs
 * are applied live and its record is rewritten under the public id. Undefined when the pool
 * has none that fits (or claiming failed, leaving the caller to the cold path).
 */
export async function claimPooled(
  ns: NamespaceParts,
  spec: SandboxSpec,
  limits: SandboxLimits,
  timer: StepTimer,
): Promise<Live | undefined> {
  for (;;) {
    if (ns.sandboxes.has(spec.id)) {
      throw new AgentError("already_exists", `sandbox ${spec.id} already exists`);
    }
    const live = ns.warm.take(spec.template, limits.diskSizeMb);
    if (!live) return undefined;
    const { record } = live;
    // Taken and listed synchronously: a concurrent create of the same id fails.
    ns.sandboxes.set(spec.id, live);
    Object.assign(record, {
      id: spec.id,
      pooled: false,
      ...limits,
      timeoutSec: spec.timeoutSec ?? 0,
      allowInternetAccess: spec.allowInternetAccess ?? false,
      egress: hasEgressRules(spec.egress) ? spec.egress : undefined,
      metadata: spec.metadata ?? {},
      createdAt: new Date().toISOString(),
      autoPaused: false,
    });
    try {
      await timer.step("claim", async () => {
        if (!(await isSandboxAlive(record.process!))) {
          throw new AgentError("internal", "the pooled sandbox exited");
        }
        const envd = envdOf(live);
        await Promise.all([
          live.cgroup!.setLimits({
            vcpus: record.vcpus,
            memoryMb: record.memoryMb,
            cpuWeight: CPU_WEIGHT,
          }),
          applyNetworkPolicy(live.network!, record),
          spec.envs && Object.keys(spec.envs).length > 0 && initEnvd(envd, { envVars: spec.envs }),
        ]);
      });
      // Until this write the record says pooled: a crash before it leaves debris, not a sandbox.
      await timer.step("record", () => ns.state.write(record));
      return live;
    } catch (err) {
      ns.sandboxes.delete(spec.id);
      ns.logger.warn(
        { op: "claim", sandboxId: spec.id, resourceId: record.resourceId, err },
        "warm sandbox unusable, removing it",
      );
      void teardownSandbox(ns, record.resourceId, record, new StepTimer()).then((errors) => {
        if (errors.length > 0) ns.logger.error({ errors }, "warm sandbox cleanup failed");
      });
    }
  }
}

/**
 * One ready sandbox for the warm pool, under a resource id of its own, with the limits a
 * snapshot locks (the defaults for a template: a claim sets the request's).
 */
export async function makePooled(ns: NamespaceParts, target: SizedTarget): Promise<Live> {
  const template = await ns.templateStore.getTemplate(target.template);
  const resourceId = `pool-${randomBytes(6).toString("hex")}`;
  const record: SandboxRecord = {
    id: resourceId,
    resourceId,
    pooled: true,
    runtime: ns.name,
    phase: "creating",
    template: template.name,
    layers: template.layers,
    vcpus: template.vcpus ?? DEFAULT_LIMITS.vcpus,
    memoryMb: template.memoryMb ?? DEFAULT_LIMITS.memoryMb,
    diskSizeMb: target.diskSizeMb,
    timeoutSec: 0,
    // What a create gets by default (the API's default too): a claim asking for it then changes
    // nothing on the network. Nothing runs in a pooled sandbox but envd before it is claimed.
    allowInternetAccess: true,
    metadata: {},
    createdAt: new Date().toISOString(),
    autoPaused: false,
  };
  const live: Live = { record, state: "pending", queue: Promise.resolve() };
  const timer = new StepTimer();
  // A failure is rolled back by buildSandbox (or left recorded for the next start to remove).
  await buildSandbox(ns, live, undefined, template, timer, undefined);
  try {
    await timer.step("warm-up", () => warmUpEnvd(envdOf(live)));
  } catch (err) {
    await throwAll(teardownSandbox(ns, resourceId, record, new StepTimer()));
    throw err;
  }
  ns.logger.debug(
    { op: "pool", resourceId, template: template.name, ms: timer.ms, steps: timer.steps },
    "warm sandbox ready",
  );
  return live;
}
