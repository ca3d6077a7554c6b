import { defineConfig } from "vitest/config";

// One run over every package; each package's tests live in its own test/ folder (integration)
// or beside the code (*.test.ts, unit).
export default defineConfig({
  test: {
    projects: ["packages/*", "examples", "scripts"],
    // One test file at a time across all packages: the suites drive real sandboxes, disks and
    // 1 GiB transfers, and ratios measured while another suite loads the same two cores and disk
    // say more about the neighbour than about the code.
    fileParallelism: false,
  },
});
