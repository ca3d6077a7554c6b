import { availableParallelism } from "node:os";
import { AgentError } from "../errors.js";
import type { TemplateInfo } from "../template/index.js";
import type { SandboxSpec } from "./types.js";

/** Limits a sandbox gets when the request leaves them at 0. */
export const DEFAULT_LIMITS = { vcpus: 1, memoryMb: 512, diskSizeMb: 1024 } as const;

export interface SandboxLimits {
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
}

/**
 * The limits a create gets: a snapshot's own, else the request's, else the defaults. With
 * `strict`, a request that names limits other than the snapshot's is refused instead of
 * overridden (a microVM snapshot's RAM and vCPUs cannot change).
 */
export function lockedLimits(
  spec: SandboxSpec,
  template: Pick<TemplateInfo, "vcpus" | "memoryMb" | "diskSizeMb" | "name">,
  options: { strict?: boolean } = {},
): SandboxLimits {
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new AgentError("invalid_argument", what);
  };
  if (options.strict) {
    const fixed = [
      ["vcpus", spec.vcpus, template.vcpus],
      ["memory_mb", spec.memoryMb, template.memoryMb],
    ] as const;
    for (const [what, asked, locked] of fixed) {
      check(
        !asked || locked === undefined || asked === locked,
        `${what} is fixed at ${locked} by snapshot ${template.name}; leave it out or ask for ${locked}`,
      );
    }
  }
  const limits = {
    vcpus: template.vcpus ?? (spec.vcpus || DEFAULT_LIMITS.vcpus),
    memoryMb: template.memoryMb ?? (spec.memoryMb || DEFAULT_LIMITS.memoryMb),
    diskSizeMb: template.diskSizeMb ?? (spec.diskSizeMb || DEFAULT_LIMITS.diskSizeMb),
  };
  check(
    Number.isInteger(limits.vcpus) && limits.vcpus <= availableParallelism(),
    `vcpus must be a whole number up to this host's ${availableParallelism()}`,
  );
  // envd itself (Node) needs about 40 MiB; below this a sandbox cannot even start.
  check(
    Number.isInteger(limits.memoryMb) && limits.memoryMb >= 64,
    "memory_mb must be at least 64",
  );
  check(
    Number.isInteger(limits.diskSizeMb) && limits.diskSizeMb >= 8,
    "disk_size_mb must be at least 8",
  );
  return limits;
}

/** For the primitives that return their failures instead of throwing them. */
export async function throwAll(result: Promise<Error[]>): Promise<void> {
  const errors = await result;
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, errors.map((e) => e.message).join("; "));
}
