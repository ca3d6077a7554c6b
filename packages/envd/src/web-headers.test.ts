import { describe, expect, it } from "vitest";
import { EnvdHeaders } from "./web-headers.js";

// Node's own Headers (undici) is the reference: envd's stand-in must answer the same.
const NodeHeaders = globalThis.Headers;

/** Everything a Headers shows: its sorted entries, and what get/has/getSetCookie say. */
function view(h: Headers) {
  return {
    entries: [...h],
    keys: [...h.keys()],
    values: [...h.values()],
    each: (() => {
      const seen: string[] = [];
      h.forEach((value, key) => {
        seen.push(`${key}=${value}`);
      });
      return seen;
    })(),
    get: ["content-type", "X-Multi", "set-cookie", "absent"].map((n) => h.get(n)),
    has: ["CONTENT-TYPE", "absent"].map((n) => h.has(n)),
    cookies: h.getSetCookie(),
  };
}

const inits: [string, () => ConstructorParameters<typeof Headers>[0]][] = [
  ["nothing", () => undefined],
  ["a record", () => ({ "Content-Type": "application/json", "X-Multi": " padded\t\r\n" })],
  [
    "pairs",
    () => [
      ["x-multi", "a"],
      ["X-Multi", "b"],
      ["set-cookie", "a=1"],
      ["Set-Cookie", "b=2"],
      ["connect-timeout-ms", "100"],
    ],
  ],
  ["another Headers", () => new NodeHeaders({ Zed: "z", alpha: "a" })],
];

describe("EnvdHeaders", () => {
  for (const [what, init] of inits) {
    it(`answers as Node's Headers, built from ${what} and then changed`, () => {
      const ours = new EnvdHeaders(init());
      const node = new NodeHeaders(init());
      expect(view(ours)).toEqual(view(node));
      for (const h of [ours, node]) {
        h.append("x-multi", "c");
        h.set("Content-Type", "text/plain");
        h.append("set-cookie", "c=3");
        h.delete("connect-timeout-ms");
        h.append("Grpc-Status", "0");
      }
      expect(view(ours)).toEqual(view(node));
      expect(view(new EnvdHeaders(ours))).toEqual(view(new NodeHeaders(node)));
      expect(Object.prototype.toString.call(ours)).toBe("[object Headers]");
    });
  }

  it("refuses what Node's Headers refuses", () => {
    for (const make of [
      (H: typeof Headers) => new H({ "bad name": "x" }),
      (H: typeof Headers) => new H({ ok: "line\r\nbreak" }),
      (H: typeof Headers) => new H([["only-one"]] as unknown as [string, string][]),
      (H: typeof Headers) => new H().get("bad:name"),
      (H: typeof Headers) => new H().set("", "x"),
    ]) {
      expect(() => make(NodeHeaders)).toThrow(TypeError);
      expect(() => make(EnvdHeaders)).toThrow(TypeError);
    }
  });
});
