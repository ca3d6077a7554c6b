import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../src/network/index.js";
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
