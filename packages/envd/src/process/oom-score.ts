import { readFileSync, writeFileSync } from "node:fs";
import { logger } from "../logger.js";

const oomScoreAdjFile = "/proc/self/oom_score_adj";
const ownOomScoreAdj = (() => {
  try {
    return readFileSync(oomScoreAdjFile, "utf8").trim();
  } catch {
    return undefined;
  }
})();

/**
 * Runs a (synchronous) spawn with envd's own oom_score_adj at the maximum, so the child inherits
 * it at fork time — before it can fork anything itself — then puts envd's back. When a sandbox
 * runs out of memory the killer then takes the user's processes rather than envd. Going back
 * down is allowed to the floor the launcher set, without CAP_SYS_RESOURCE. Best effort.
 */
export function firstForOomKiller(spawn: () => void): void {
  const raised = ownOomScoreAdj !== undefined && trySetOomScoreAdj("1000");
  try {
    spawn();
  } finally {
    if (raised && ownOomScoreAdj !== undefined) trySetOomScoreAdj(ownOomScoreAdj);
  }
}

function trySetOomScoreAdj(value: string): boolean {
  try {
    writeFileSync(oomScoreAdjFile, value);
    return true;
  } catch (err) {
    logger.debug({ err, value }, "could not set oom_score_adj");
    return false;
  }
}
