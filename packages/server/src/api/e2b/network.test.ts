import { describe, expect, it } from "vitest";
import { egressRuleProblem } from "../egress-rules.js";
import { e2bNetwork } from "./network.js";

describe("E2B network options as Wrenn's policy", () => {
  it("keeps plain internet access and rules as they are", () => {
    expect(e2bNetwork(undefined, undefined)).toEqual({
      allowInternetAccess: true,
      allowOut: [],
      denyOut: [],
    });
    expect(e2bNetwork(false, undefined).allowInternetAccess).toBe(false);
    expect(e2bNetwork(true, { denyOut: ["1.1.1.1"] })).toEqual({
      allowInternetAccess: true,
      allowOut: [],
      denyOut: ["1.1.1.1"],
    });
  });

  it("reads E2B's allowlists: no internet or ALL_TRAFFIC denied, plus allowOut", () => {
    const allowlist = { allowInternetAccess: true, allowOut: ["1.1.1.1"], denyOut: [] };
    expect(e2bNetwork(false, { allowOut: ["1.1.1.1"] })).toEqual(allowlist);
    expect(e2bNetwork(undefined, { allowOut: ["1.1.1.1"], denyOut: ["0.0.0.0/0"] })).toEqual(
      allowlist,
    );
    // Denying everything and allowing nothing: no egress at all.
    expect(e2bNetwork(true, { denyOut: ["0.0.0.0/0"] }).allowInternetAccess).toBe(false);
    // In E2B allow wins: an entry in both lists stays allowed.
    expect(
      e2bNetwork(true, { allowOut: ["a.example.com"], denyOut: ["a.example.com"] }).denyOut,
    ).toEqual([]);
  });
});

describe("egress rule entries", () => {
  it("accepts addresses, CIDRs and domain names", () => {
    for (const ok of [
      "1.1.1.1",
      "0.0.0.0/0",
      "203.0.113.0/24",
      "example.com",
      "*.example.com",
      "a_b.example.com.",
    ]) {
      expect(egressRuleProblem(ok), ok).toBeUndefined();
    }
  });
  it("names what is wrong with the rest", () => {
    expect(egressRuleProblem("10.0.0.1/8")).toContain("host bits");
    expect(egressRuleProblem("10.0.0.0/40")).toContain("prefix");
    expect(egressRuleProblem("::1")).toContain("IPv6");
    for (const bad of ["", "exa mple.com", "a..b", "*.*.b", "999.1.1.1", "x.com/8", "-a.com"]) {
      expect(egressRuleProblem(bad), bad).toBeDefined();
    }
  });
});
