import { describe, expect, it } from "vitest";
import { MAX_EGRESS_RULES, nameMatches, parseEgressRules } from "./rules.js";

describe("egress rules", () => {
  it("splits CIDRs from names, canonical and deduplicated", () => {
    expect(
      parseEgressRules({
        allowOut: ["1.2.3.4", "1.2.3.4/32", "10.0.0.0/8", "Example.COM.", "*.example.org"],
        denyOut: [],
      }),
    ).toEqual({
      allowlist: true,
      allowCidrs: ["1.2.3.4/32", "10.0.0.0/8"],
      denyCidrs: [],
      allowNames: ["example.com", "*.example.org"],
      denyNames: [],
    });
    expect(parseEgressRules({ allowOut: [], denyOut: ["a.b"] }).allowlist).toBe(false);
  });

  it("refuses malformed entries and too many with invalid_argument", () => {
    for (const bad of [
      "10.0.0.1/8",
      "10.0.0.0/33",
      "1.2.3",
      "256.1.1.1",
      "a..b",
      "*.*.a",
      "-a.b",
      "::1",
      "",
    ]) {
      expect(() => parseEgressRules({ allowOut: [bad], denyOut: [] }), bad).toThrow(
        expect.objectContaining({ code: "invalid_argument" }),
      );
    }
    const many = Array.from({ length: MAX_EGRESS_RULES + 1 }, (_, i) => `h${i}.example.com`);
    expect(() => parseEgressRules({ allowOut: [], denyOut: many })).toThrow(/more than/);
  });

  it("matches names exactly, and subdomains only through *.", () => {
    expect(nameMatches(["example.com"], "EXAMPLE.com.")).toBe(true);
    expect(nameMatches(["example.com"], "a.example.com")).toBe(false);
    expect(nameMatches(["*.example.com"], "a.b.example.com")).toBe(true);
    expect(nameMatches(["*.example.com"], "example.com")).toBe(false);
    expect(nameMatches(["*.example.com"], "badexample.com")).toBe(false);
  });
});
