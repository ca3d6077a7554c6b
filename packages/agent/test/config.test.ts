import { describe, expect, it } from "vitest";
import {
  DEFAULT_TEMPLATE,
  defaultWarmPoolMemoryMb,
  loadConfig,
  parseWarmPool,
  warmPoolFromEnv,
} from "../src/config/index.js";

describe("WRENN_WARM_POOL", () => {
  it("defaults to auto: follows the create rate within a share of the host's memory", () => {
    expect(loadConfig({}).warmPool).toEqual({
      mode: "auto",
      defaultTemplate: DEFAULT_TEMPLATE,
      memoryMb: defaultWarmPoolMemoryMb(),
    });
    expect(defaultWarmPoolMemoryMb()).toBeGreaterThanOrEqual(128);
    expect(warmPoolFromEnv({ WRENN_WARM_POOL_MEMORY_MB: "300" }, "test-minimal")).toEqual({
      mode: "auto",
      defaultTemplate: "test-minimal",
      memoryMb: 300,
    });
  });

  it("takes a count for the default template, or template=count pairs; 0 disables", () => {
    expect(parseWarmPool("0")).toEqual([]);
    expect(parseWarmPool("3", { defaultTemplate: "test-minimal" })).toEqual([
      { template: "test-minimal", size: 3 },
    ]);
    expect(parseWarmPool("base=3, test-minimal=1")).toEqual([
      { template: "base", size: 3 },
      { template: "test-minimal", size: 1 },
    ]);
  });

  it("refuses what is not auto, a count or a safe template name", () => {
    for (const bad of ["-1", "two", "1.5", "65", "../x=1", "base=", "=2", "automatic"]) {
      expect(() => parseWarmPool(bad), bad).toThrow(/WRENN_WARM_POOL/);
    }
    for (const bad of ["-5", "lots", "1.5"]) {
      expect(() => warmPoolFromEnv({ WRENN_WARM_POOL_MEMORY_MB: bad }, "base"), bad).toThrow(
        /WRENN_WARM_POOL_MEMORY_MB/,
      );
    }
  });
});
