import { runCommand } from "../host/index.js";

interface Queued {
  script: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const queue: Queued[] = [];
let draining = false;

/**
 * Runs an nft script (`nft -f -`, one transaction). This process runs one nft at a time and
 * merges the scripts that queued meanwhile into one transaction: nft re-reads the ruleset
 * whenever another writer changed it mid-read, so concurrent calls (a burst of creates) slow
 * each other down far more than their count. If a merged transaction fails, nothing of it was
 * applied, and each script is run again alone so that each caller gets its own answer.
 */
export function runNftScript(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    queue.push({ script: script.endsWith("\n") ? script : `${script}\n`, resolve, reject });
    if (!draining) {
      draining = true;
      void drain();
    }
  });
}

async function drain(): Promise<void> {
  while (queue.length > 0) {
    const batch = queue.splice(0);
    try {
      await runScript(batch.map((q) => q.script).join(""));
      for (const q of batch) q.resolve();
    } catch (err) {
      if (batch.length === 1) batch[0]!.reject(err);
      else for (const q of batch) await runScript(q.script).then(q.resolve, q.reject);
    }
  }
  // No await between the last look at the queue and this: a script queued later starts a drain.
  draining = false;
}

function runScript(script: string): Promise<void> {
  return runCommand("nft", ["-f", "-"], { input: script }).then(() => {});
}
