import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // These suites drive real processes, namespaces and mounts as root: one file at a time keeps
    // them from fighting over the machine's two cores and its loop devices.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
