// A transfer's buffers as a relaying process makes them: one per socket read, each dropped once
// used and freed when V8 next collects. Prints each round's minor page faults and the pages a
// round allocates, as JSON; with --raise, after raiseMallocThresholds(). Needs --expose-gc.
import { raiseMallocThresholds } from "../../src/heap/index.js";

const CHUNK = 64 * 1024;
const ROUND_BYTES = 48 * 1024 * 1024;
const ROUNDS = 4;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");
const collect = async () => {
  gc();
  // V8 may free array buffers' memory on a helper thread just after the collection.
  await new Promise((resolve) => setTimeout(resolve, 50));
};
const faults = () => process.resourceUsage().minorPageFault;

if (process.argv.includes("--raise")) raiseMallocThresholds();
await collect();
const rounds: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const before = faults();
  for (let i = 0; i < ROUND_BYTES / CHUNK; i++) {
    Buffer.allocUnsafeSlow(CHUNK).fill(i);
    // Back to the loop now and then, as between socket reads: V8 collects young garbage there.
    if (i % 16 === 0) await new Promise(setImmediate);
  }
  await collect();
  rounds.push(faults() - before);
}
console.log(JSON.stringify({ roundPages: ROUND_BYTES / 4096, rounds }));
