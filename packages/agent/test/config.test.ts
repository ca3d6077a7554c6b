import { describe, expect, it } from "vitest";
import { DEFAULT_TEMPLATE, loadConfig, parseWarmPool } from "../src/config/index.js";

describe("WRENN_WARM_POOL", () => {
  it("defaults to two ready sandboxes of the default template", () => {
    expect(loadConfig({}).warmPool).toEqual([{ template: DEFAULT_TEMPLATE, size: 2 }]);
  });

  it("takes a count for the default template, or template=count pairs; 0 disables", () => {
    expect(parseWarmPool("0")).toEqual([{ template: DEFAULT_TEMPLATE, size: 0 }]);
    expect(parseWarmPool("base=3, test-minimal=1")).toEqual([
      { template: "base", size: 3 },
      { template: "test-minimal", size: 1 },
    ]);
  });

  it("refuses what is not a count or a safe template name", () => {
    for (const bad of ["-1", "two", "1.5", "65", "../x=1", "base=", "=2"]) {
      expect(() => parseWarmPool(bad), bad).toThrow(/WRENN_WARM_POOL/);
    }
  });
});
