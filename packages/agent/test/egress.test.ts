import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  AddressPool,
  applyEgress,
  createNetwork,
  type EgressRules,
  ensureHostFirewall,
  hostIfName,
  keepHostFirewallState,
  listNetworkDebris,
  removeNetwork,
  runCommand,
  type SandboxNetwork,
  setInternetAccess,
} from "../src/network/index.js";
import { type OutsideWorld, startOutsideWorld } from "./fixtures/outside-world.js";

// Egress rules against a stand-in internet (fixtures/outside-world.ts): real netns, nftables
// and the agent's DNS forwarder. Traffic only goes between the host and namespaces made here.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 120_000 });

const isRoot = process.getuid?.() === 0;
const hasNft =
  isRoot &&
  (await runCommand("nft", ["--version"]).then(
    () => true,
    () => false,
  ));
if (!hasNft) console.log("egress tests skipped: they need root and nftables (Debian's nftables)");

const run = randomBytes(3).toString("hex");
const pool = new AddressPool("10.224.16.0/20");
const made: string[] = [];
const children = new Set<ChildProcess>();
let outside: OutsideWorld;
let restoreFirewall: (() => Promise<void>) | undefined;
const previousUpstream = process.env.WRENN_DNS_UPSTREAM;

// Run in the sandbox's netns: each argument is "ip:port" (connect) or "name:port" (look the name
// up through the outside's DNS server, which the sandbox's DNS interception answers when it has
// rules, then connect). Prints one
// line per argument: "<arg> served=<addr>", "<arg> ENOTFOUND", "<arg> ECONNREFUSED", "<arg> timeout"…
const PROBE = `const net = require("net"), dns = require("dns");
const resolver = new dns.promises.Resolver({ timeout: 3000, tries: 1 });
resolver.setServers([process.env.DNS]);
(async () => {
  for (const arg of process.argv.slice(1)) {
    const [host, port] = arg.split(":");
    let address = host;
    if (!/^[\\d.]+$/.test(host)) {
      try { [address] = await resolver.resolve4(host); }
      catch (e) { console.log(arg + " " + (e.code || "dns-error")); continue; }
    }
    console.log(arg + " " + await new Promise((done) => {
      const s = net.connect({ host: address, port: +port });
      let out = "";
      s.setTimeout(1500, () => { s.destroy(); done("timeout"); });
      s.on("data", (d) => (out += d));
      s.on("end", () => done(out.trim()));
      s.on("error", (e) => done(e.code));
    }));
  }
})();`;

async function probe(network: SandboxNetwork, targets: string[]): Promise<Record<string, string>> {
  const child = spawn(
    "ip",
    ["netns", "exec", network.netnsName, process.execPath, "-e", PROBE, ...targets],
    { env: { ...process.env, DNS: outside.dns } },
  );
  children.add(child);
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  await new Promise((resolve) => child.on("exit", resolve));
  children.delete(child);
  return Object.fromEntries(
    out
      .trim()
      .split("\n")
      .map((line) => line.split(" ") as [string, string]),
  );
}

async function sandbox(name: string, allowInternet: boolean, egress?: EgressRules) {
  const sandboxId = `eg${run}-${name}`;
  made.push(sandboxId);
  return createNetwork({
    sandboxId,
    addresses: pool.allocate(sandboxId),
    allowInternet,
    ...(egress && { egress }),
  });
}

describe.skipIf(!hasNft)("egress rules", () => {
  let A: string; // web.test, and *.wild.test
  let B: string; // api.test
  let C: string; // other.test
  const served = (address: string) => `served=${address}`;

  beforeAll(async () => {
    outside = await startOutsideWorld(([a, b, c]) => ({
      "web.test": [a],
      "api.test": [b],
      "other.test": [c],
      "x.wild.test": [c],
    }));
    [A, B, C] = outside.web;
    process.env.WRENN_DNS_UPSTREAM = outside.dns;
    restoreFirewall = await keepHostFirewallState();
    await ensureHostFirewall({ cidr: pool.cidr });
  });

  afterAll(async () => {
    for (const child of children) child.kill("SIGKILL");
    const errors = (await Promise.all(made.map((id) => removeNetwork(id)))).flat();
    await outside?.stop();
    await restoreFirewall?.();
    if (previousUpstream === undefined) delete process.env.WRENN_DNS_UPSTREAM;
    else process.env.WRENN_DNS_UPSTREAM = previousUpstream;
    expect(errors).toEqual([]);
    // Nothing of this file is left: netns, veths, egress tables, DNS members.
    const debris = await listNetworkDebris();
    const ours = made.map(hostIfName);
    expect(debris.netns.filter((n) => n.includes(run))).toEqual([]);
    expect(debris.links.filter((l) => ours.includes(l))).toEqual([]);
    expect(debris.egressTables.filter((t) => ours.includes(t))).toEqual([]);
    const dnsSet = await runCommand("nft", ["list", "set", "inet", "wrenn", "dns"]).catch(() => ({
      stdout: "",
    }));
    for (const hostIf of ours) expect(dnsSet.stdout).not.toContain(hostIf);
    expect(existsSync(`/run/netns/${outside?.netns}`)).toBe(false);
  });

  it("reaches every outside address without rules, and none with internet access off", async () => {
    const open = await sandbox("open", true);
    const closed = await sandbox("closed", false, { allowOut: ["web.test"], denyOut: [] });
    const res = await probe(open, [`${A}:80`, `${B}:80`, "web.test:80"]);
    expect(res).toEqual({
      [`${A}:80`]: served(A),
      [`${B}:80`]: served(B),
      "web.test:80": served(A),
    });
    const cut = await probe(closed, [`${A}:80`, `${B}:80`]);
    expect(cut[`${A}:80`]).toBe("timeout");
    expect(cut[`${B}:80`]).toBe("timeout");
  });

  it("allows and denies by CIDR, deny winning", async () => {
    const allow = await sandbox("cidr-allow", true, {
      allowOut: [`${A}/32`, outside.cidr],
      denyOut: [B],
    });
    const deny = await sandbox("cidr-deny", true, { allowOut: [], denyOut: [`${B}/32`] });
    expect(await probe(allow, [`${A}:80`, `${B}:80`, `${C}:80`])).toEqual({
      [`${A}:80`]: served(A),
      [`${B}:80`]: "ECONNREFUSED",
      [`${C}:80`]: served(C),
    });
    expect(await probe(deny, [`${A}:80`, `${B}:80`, `${C}:80`])).toEqual({
      [`${A}:80`]: served(A),
      [`${B}:80`]: "ECONNREFUSED",
      [`${C}:80`]: served(C),
    });
  });

  it("allows by name only the addresses the name resolved to, even for hard-coded IPs", async () => {
    const net = await sandbox("names", true, {
      allowOut: ["web.test", "*.wild.test"],
      denyOut: [],
    });
    // Before any lookup the allowed name's address is closed too: only resolved addresses open.
    expect(await probe(net, [`${A}:80`])).toEqual({ [`${A}:80`]: "ECONNREFUSED" });
    expect(
      await probe(net, ["web.test:80", `${A}:80`, `${B}:80`, "api.test:80", "x.wild.test:80"]),
    ).toEqual({
      "web.test:80": served(A),
      [`${A}:80`]: served(A),
      // Another address of the same outside, hard-coded: refused.
      [`${B}:80`]: "ECONNREFUSED",
      // A name not allowed resolves but does not pass.
      "api.test:80": "ECONNREFUSED",
      "x.wild.test:80": served(C),
    });
  });

  it("denies by name (NXDOMAIN, and its addresses closed) over an allowing CIDR", async () => {
    const net = await sandbox("name-deny", true, {
      allowOut: [outside.cidr],
      denyOut: ["web.test"],
    });
    expect(await probe(net, ["web.test:80", `${A}:80`, "api.test:80"])).toEqual({
      "web.test:80": "ENOTFOUND",
      [`${A}:80`]: "ECONNREFUSED",
      "api.test:80": served(B),
    });
  });

  it("changes the rules of a running sandbox", async () => {
    const net = await sandbox("live", true, { allowOut: ["web.test"], denyOut: [] });
    expect(await probe(net, ["web.test:80", `${B}:80`])).toEqual({
      "web.test:80": served(A),
      [`${B}:80`]: "ECONNREFUSED",
    });
    await applyEgress(net, { allowOut: [B], denyOut: ["web.test"] });
    // web.test's address, resolved under the old rules, is now in the deny set.
    expect(await probe(net, [`${A}:80`, `${B}:80`])).toEqual({
      [`${A}:80`]: "ECONNREFUSED",
      [`${B}:80`]: served(B),
    });
    await applyEgress(net, undefined);
    expect(await probe(net, [`${A}:80`, `${C}:80`])).toEqual({
      [`${A}:80`]: served(A),
      [`${C}:80`]: served(C),
    });
    await setInternetAccess(net, false);
    expect(await probe(net, [`${A}:80`])).toEqual({ [`${A}:80`]: "timeout" });
  });

  it("refuses malformed rules without touching the sandbox's rules", async () => {
    const net = await sandbox("bad", true, { allowOut: [], denyOut: [B] });
    await expect(
      applyEgress(net, { allowOut: ["10.0.0.1/33"], denyOut: [] }),
    ).rejects.toMatchObject({
      code: "invalid_argument",
    });
    expect(await probe(net, [`${B}:80`])).toEqual({ [`${B}:80`]: "ECONNREFUSED" });
  });
});
