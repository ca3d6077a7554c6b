import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

// raiseMallocThresholds in a process of its own: glibc's thresholds are per process, and
// whatever a process freed before moves them.
const churn = fileURLToPath(new URL("./helpers/heap-churn.ts", import.meta.url));

describe("raiseMallocThresholds", () => {
  it("keeps a transfer's freed buffers mapped: later rounds fault few pages in", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      "--expose-gc",
      "--import",
      "tsx",
      churn,
      "--raise",
    ]);
    const { roundPages, rounds } = JSON.parse(stdout) as { roundPages: number; rounds: number[] };
    // The first round grows the heap; later ones reuse it. Without the call, glibc gave the
    // freed heap back to the kernel and a third or more of each round's pages faulted in again.
    expect(rounds).toHaveLength(4);
    for (const faults of rounds.slice(1)) expect(faults).toBeLessThan(roundPages / 8);
  });
});
