import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../src/network/index.js";
import type { NamespaceRuntime } from "../src/runtime/index.js";
import { type HostileSandbox, hostileRuntime } from "./fixtures/hostile-runtime.js";
import { microVmSkipReason } from "./fixtures/microvm.js";
import { type OutsideWorld, startOutsideWorld } from "./fixtures/outside-world.js";

// Egress rules through a runtime, end to end: set at create and changed live, enforced on real
// sandboxes whose programs resolve names the ordinary way (getaddrinfo and /etc/resolv.conf).
// The outside is fixtures/outside-world.ts: nothing leaves the machine.

const isRoot = process.getuid?.() === 0;
const hasNft =
  isRoot &&
  (await runCommand("nft", ["--version"]).then(
    () => true,
    () => false,
  ));
const microVmSkip = await microVmSkipReason();
if (!hasNft) console.log("egress runtime tests skipped: they need root and nftables");

// In the sandbox: "name:port" or "ip:port" per argument, looked up with dns.lookup (the libc
// way), then connected to; prints "<arg> served=<addr>" or "<arg> <error code>".
const PROBE = `const net = require("net"), dns = require("dns");
(async () => {
  for (const arg of process.argv.slice(1)) {
    const [host, port] = arg.split(":");
    const address = await new Promise((done) => dns.lookup(host, { family: 4 }, (e, a) => done(e ? "!" + (e.code || "dns") : a)));
    if (address.startsWith("!")) { console.log(arg + " " + address.slice(1)); continue; }
    console.log(arg + " " + await new Promise((done) => {
      const s = net.connect({ host: address, port: +port });
      let out = "";
      s.setTimeout(2000, () => { s.destroy(); done("timeout"); });
      s.on("data", (d) => (out += d));
      s.on("end", () => done(out.trim()));
      s.on("error", (e) => done(e.code));
    }));
  }
})();`;

async function probe(sandbox: HostileSandbox, targets: string[]): Promise<Record<string, string>> {
  const res = await sandbox.root.sh(`node -e '${PROBE}' ${targets.join(" ")}`);
  expect(res.exitCode, res.stderr).toBe(0);
  return Object.fromEntries(
    res.stdout
      .trim()
      .split("\n")
      .map((l) => l.split(" ") as [string, string]),
  );
}

for (const runtime of ["namespace", "microvm"] as const) {
  const skip = !hasNft
    ? "needs root and nftables"
    : runtime === "microvm"
      ? microVmSkip
      : undefined;
  describe.skipIf(skip)(`egress rules: ${runtime} runtime`, { timeout: 300_000 }, () => {
    const hx = hostileRuntime({
      netBase: runtime === "namespace" ? 32 : 48,
      net16: "10.224",
      runtime,
    });
    let outside: OutsideWorld;
    let A: string;
    let B: string;
    const previousUpstream = process.env.WRENN_DNS_UPSTREAM;
    const served = (address: string) => `served=${address}`;
    const more = runtime === "microvm" ? { diskSizeMb: 512 } : {};

    beforeAll(async () => {
      outside = await startOutsideWorld(([a, b]) => ({ "web.test": [a], "api.test": [b] }));
      hx.defer(() => outside.stop());
      [A, B] = outside.web;
      process.env.WRENN_DNS_UPSTREAM = outside.dns;
    }, 120_000);

    afterAll(() => {
      if (previousUpstream === undefined) delete process.env.WRENN_DNS_UPSTREAM;
      else process.env.WRENN_DNS_UPSTREAM = previousUpstream;
    });

    it("applies the rules of a create and changes them live", async () => {
      const sandbox = await hx.create(`eg-${runtime}`, {
        allowInternetAccess: true,
        egress: { allowOut: ["web.test"], denyOut: [] },
        ...more,
      });
      expect(sandbox.info.egress).toEqual({ allowOut: ["web.test"], denyOut: [] });
      expect(await probe(sandbox, ["web.test:80", `${B}:80`, "api.test:80"])).toEqual({
        "web.test:80": served(A),
        // Hard-coded address of the same outside: refused.
        [`${B}:80`]: "ECONNREFUSED",
        "api.test:80": "ECONNREFUSED",
      });

      const changed = await hx.runtime.setNetwork(sandbox.id, {
        allowInternetAccess: true,
        egress: { allowOut: [], denyOut: ["web.test"] },
      });
      expect(changed.egress).toEqual({ allowOut: [], denyOut: ["web.test"] });
      expect(await probe(sandbox, ["web.test:80", `${A}:80`, "api.test:80"])).toEqual({
        "web.test:80": "ENOTFOUND",
        [`${A}:80`]: "ECONNREFUSED",
        "api.test:80": served(B),
      });

      // No rules: everything passes, and names still resolve (the sandbox's resolv.conf points
      // at its gateway, where the agent forwards every name).
      await hx.runtime.setNetwork(sandbox.id, { allowInternetAccess: true });
      expect(await probe(sandbox, ["web.test:80", "api.test:80"])).toEqual({
        "web.test:80": served(A),
        "api.test:80": served(B),
      });

      await hx.runtime.setNetwork(sandbox.id, { allowInternetAccess: false });
      expect(await probe(sandbox, [`${A}:80`])).toEqual({ [`${A}:80`]: "timeout" });
    });

    it("refuses malformed rules at create with invalid_argument, making nothing", async () => {
      await expect(
        hx.create(`eg-bad-${runtime}`, { egress: { allowOut: ["not a name"], denyOut: [] } }),
      ).rejects.toMatchObject({ code: "invalid_argument" });
      expect(hx.runtime.list().filter((s) => s.id.endsWith(`-eg-bad-${runtime}`))).toEqual([]);
    });
  });
}

// A create that claims a pooled sandbox (made without rules, before anyone asked) gets its rules
// on the claim path.
describe.skipIf(!hasNft)(
  "egress rules: namespace runtime, claimed from the warm pool",
  { timeout: 300_000 },
  () => {
    const hx = hostileRuntime({
      netBase: 64,
      net16: "10.224",
      warmPool: [{ template: "test-minimal", size: 1, diskSizeMb: 64 }],
    });
    let outside: OutsideWorld;
    const previousUpstream = process.env.WRENN_DNS_UPSTREAM;

    /** Resource ids of the records in the runtime's state dir, by public id. */
    async function records(): Promise<
      Map<string, { rid: string; pooled: boolean; phase: string }>
    > {
      const out = new Map<string, { rid: string; pooled: boolean; phase: string }>();
      for (const rid of await readdir(join(hx.dir, "sandboxes")).catch(() => [] as string[])) {
        const raw = await readFile(join(hx.dir, "sandboxes", rid, "sandbox.json"), "utf8").catch(
          () => "",
        );
        if (!raw) continue;
        const r = JSON.parse(raw) as { id: string; pooled: boolean; phase: string };
        out.set(r.id, { rid, pooled: r.pooled, phase: r.phase });
      }
      return out;
    }

    beforeAll(async () => {
      outside = await startOutsideWorld(([a, b]) => ({ "web.test": [a], "api.test": [b] }));
      hx.defer(() => outside.stop());
      process.env.WRENN_DNS_UPSTREAM = outside.dns;
      // The pool fills only from templates that exist, at adopt and after claims.
      await (hx.runtime as NamespaceRuntime).templateStore.ensureTemplate("test-minimal");
      await hx.runtime.adopt();
      // Wait for the pool to hold it (its record says running a little before): a claim is what
      // this test is about.
      for (let i = 0; i < 240 && (hx.runtime as NamespaceRuntime).warmPoolSize < 1; i++) {
        await sleep(500);
      }
      expect((hx.runtime as NamespaceRuntime).warmPoolSize, "the pool never filled").toBe(1);
    }, 180_000);

    afterAll(() => {
      if (previousUpstream === undefined) delete process.env.WRENN_DNS_UPSTREAM;
      else process.env.WRENN_DNS_UPSTREAM = previousUpstream;
    });

    it("applies the rules of a create on a pooled sandbox", async () => {
      const sandbox = await hx.create("eg-pooled", {
        allowInternetAccess: true,
        egress: { allowOut: ["web.test"], denyOut: [] },
      });
      expect((await records()).get(sandbox.id)?.rid).toMatch(/^pool-/);
      const [A, B] = outside.web;
      expect(await probe(sandbox, ["web.test:80", `${B}:80`])).toEqual({
        "web.test:80": `served=${A}`,
        [`${B}:80`]: "ECONNREFUSED",
      });
    });
  },
);
