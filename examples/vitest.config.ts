import { defineProject } from "vitest/config";

export default defineProject({
  test: {
    name: "examples",
    include: ["test/**/*.test.ts"],
    // Each example creates real sandboxes from the `base` template and runs for seconds.
    testTimeout: 180_000,
    // The first start builds `base` with debootstrap from Debian's mirror (minutes).
    hookTimeout: 20 * 60_000,
  },
});
