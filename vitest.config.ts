import { defineConfig } from "vitest/config";

// One run over every package; each package's tests live in its own test/ folder (integration)
// or beside the code (*.test.ts, unit).
export default defineConfig({
  test: {
    projects: ["packages/*"],
  },
});
