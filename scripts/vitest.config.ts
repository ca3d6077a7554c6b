import { defineProject } from "vitest/config";

// The repository's own scripts (`npm start`'s host check), run as processes.
export default defineProject({
  test: {
    name: "scripts",
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
  },
});
