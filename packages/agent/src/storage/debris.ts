import { AgentError } from "../errors.js";
import { detachLoop, type LoopDevice, listLoopDevices, unmount } from "./disk.js";
import { isWithin, mountsUnder } from "./mountinfo.js";

export interface StorageDebris {
  /** Mount points under the state dir outside every kept dir, deepest first. */
  mounts: string[];
  /** Loop devices backed by files under the state dir outside every kept dir. */
  loopDevices: LoopDevice[];
}

/**
 * Mounts and loop devices under `stateDir` that belong to none of `keepDirs` (the storage dirs
 * of known sandboxes, and anything else the agent keeps mounted there).
 */
export async function listStorageDebris(
  stateDir: string,
  keepDirs: Iterable<string> = [],
): Promise<StorageDebris> {
  const keep = [...keepDirs];
  const orphan = (path: string) => isWithin(path, stateDir) && !keep.some((k) => isWithin(path, k));
  const [mounts, loops] = await Promise.all([mountsUnder(stateDir), listLoopDevices()]);
  return {
    mounts: mounts.filter(orphan),
    loopDevices: loops.filter((l) => orphan(l.backingFile)),
  };
}

/**
 * Unmounts (lazily if busy) and detaches the debris; returns every failure. Files are left
 * alone: a dead sandbox's dir goes with destroySandboxDisk.
 */
export async function cleanupStorageDebris(debris: StorageDebris): Promise<AgentError[]> {
  const steps: [string, () => Promise<void>][] = [
    ...debris.mounts.map((p): [string, () => Promise<void>] => [`unmount ${p}`, () => unmount(p)]),
    ...debris.loopDevices.map((l): [string, () => Promise<void>] => [
      `detach ${l.device}`,
      () => detachLoop(l.device),
    ]),
  ];
  const errors: AgentError[] = [];
  for (const [what, run] of steps) {
    try {
      await run();
    } catch (err) {
      errors.push(new AgentError("internal", `${what}: ${(err as Error).message}`, { cause: err }));
    }
  }
  return errors;
}
