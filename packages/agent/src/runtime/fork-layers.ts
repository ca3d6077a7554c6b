import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { AgentError } from "../errors.js";
import { assertSandboxId, type SandboxRecord } from "../state/index.js";
import type { ForkTarget, SandboxInfo, SandboxSpec } from "./types.js";

/**
 * A fork freezes its source into an internal snapshot (a "fork layer") that its sandboxes start
 * from. Nobody names one from outside: the prefix is reserved, the layers are not listed, and
 * each goes as soon as no sandbox or snapshot stands on it.
 */
const FORK_LAYER_PREFIX = "fork-";

/** Most sandboxes one fork makes. */
export const MAX_FORKS = 10;

/** Fork layers made but whose sandboxes are not all made yet: no sweep may take them. */
const forming = new Set<string>();

export function isForkLayer(name: string): boolean {
  return name.startsWith(FORK_LAYER_PREFIX);
}

/** invalid_argument for a name in the reserved space (a template or snapshot named by a caller). */
export function refuseForkLayer(name: string, what: string): void {
  if (isForkLayer(name)) {
    throw new AgentError(
      "invalid_argument",
      `${what} ${name}: names starting with ${FORK_LAYER_PREFIX} are reserved`,
    );
  }
}

/** 1 to MAX_FORKS targets with distinct, valid ids. */
export function checkForkTargets(targets: readonly ForkTarget[]): void {
  if (targets.length < 1 || targets.length > MAX_FORKS) {
    throw new AgentError("invalid_argument", `a fork makes 1 to ${MAX_FORKS} sandboxes`);
  }
  for (const t of targets) assertSandboxId(t.id);
  if (new Set(targets.map((t) => t.id)).size !== targets.length) {
    throw new AgentError("invalid_argument", "fork targets must have distinct ids");
  }
}

/**
 * Names a new fork layer and holds it out of sweeps while `work` makes it and its sandboxes;
 * then runs `sweep` (which removes it if nothing was made from it).
 */
export async function withForkLayer<T>(
  work: (layer: string) => Promise<T>,
  sweep: () => Promise<void>,
): Promise<T> {
  const layer = `${FORK_LAYER_PREFIX}${randomBytes(8).toString("hex")}`;
  forming.add(layer);
  try {
    return await work(layer);
  } finally {
    forming.delete(layer);
    // A sweep that fails logs why; the next one (a destroy, the next start) retries.
    await sweep().catch(() => {});
  }
}

/**
 * Removes every fork layer of `all` that nothing uses (`inUse`), except those being made.
 * Failures are logged: the next sweep (another destroy, or the next start) retries.
 */
export async function sweepForkLayers(
  all: readonly string[],
  inUse: (layer: string) => boolean,
  remove: (layer: string) => Promise<void>,
  logger: Logger,
): Promise<void> {
  for (const layer of all) {
    if (!isForkLayer(layer) || forming.has(layer) || inUse(layer)) continue;
    try {
      await remove(layer);
      logger.info({ op: "fork-layer-remove", layer }, "fork layer removed");
    } catch (err) {
      logger.warn({ op: "fork-layer-remove", layer, err }, "cannot remove a fork layer");
    }
  }
}

/** One fork of `source` from its fork layer: the source's resources and network, the target's id. */
export function forkSpec(source: SandboxRecord, layer: string, target: ForkTarget): SandboxSpec {
  return {
    id: target.id,
    template: layer,
    vcpus: source.vcpus,
    memoryMb: source.memoryMb,
    diskSizeMb: source.diskSizeMb,
    timeoutSec: target.timeoutSec ?? source.timeoutSec,
    metadata: target.metadata ?? source.metadata,
    allowInternetAccess: source.allowInternetAccess,
    ...(source.egress && { egress: source.egress }),
  };
}

/**
 * Makes every target (at the same time); if one fails, destroys those made and throws the
 * first failure, so a fork is whole or nothing.
 */
export async function createForks(
  targets: readonly ForkTarget[],
  create: (target: ForkTarget) => Promise<SandboxInfo>,
  destroy: (id: string) => Promise<void>,
): Promise<SandboxInfo[]> {
  const results = await Promise.allSettled(targets.map(create));
  const failed = results.find((r) => r.status === "rejected");
  if (!failed) return results.map((r) => (r as PromiseFulfilledResult<SandboxInfo>).value);
  await Promise.allSettled(
    results.flatMap((r) => (r.status === "fulfilled" ? [destroy(r.value.id)] : [])),
  );
  throw AgentError.from(failed.reason);
}
