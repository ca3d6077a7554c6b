import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    include: ["test/**/*.test.ts"],
    // One real server and one browser drive every page in order; minutes, not seconds.
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
