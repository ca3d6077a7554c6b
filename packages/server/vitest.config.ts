import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // Starts one real PostgreSQL for the whole run (the data-layer suite runs on both databases).
    globalSetup: ["test/global-setup.ts"],
    // Files share that one PostgreSQL cluster; one file at a time keeps them off each other's toes.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
