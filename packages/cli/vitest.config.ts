import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    include: ["src/**/*.test.{ts,tsx}", "test/**/*.test.ts"],
    // The CLI suites drive a real single-host server through the built binary.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
