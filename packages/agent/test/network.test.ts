import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  AddressPool,
  cleanupNetworkDebris,
  createNetwork,
  ensureHostFirewall,
  hostIfName,
  listInternetMembers,
  listNetworkDebris,
  openNetwork,
  removeHostFirewall,
  removeNetwork,
  runCommand,
  type SandboxNetwork,
} from "../src/network/index.js";
import { listenPort } from "./fixtures/listen-port.js";

// Traffic in this file only goes between the host and namespaces made here. "Outside" is a netns
// of this test on TEST-NET-3, reached through a veth; "another host address" is TEST-NET-1 on a
// spare host link. Nothing leaves the machine.
// Real processes, namespaces and mounts on a 2-core machine shared with other suites.
vi.setConfig({ testTimeout: 30_000, hookTimeout: 60_000 });

const run = randomBytes(3).toString("hex");
const id = (name: string) => `nt${run}${tag}-${name}`;
const pool = new AddressPool("10.213.240.0/20");
const OUTSIDE_NS = `wrt-out-${run}`;
const OUTSIDE_HOST_IF = `wrto${run}`;
const DUMMY_IF = `wrtd${run}`;
const DUMMY_ADDRESS = "192.0.2.77";
const OUTSIDE_ADDRESS = "203.0.113.2";
const children: ChildProcess[] = [];
const made: string[] = [];
let previousIpForward = "";
/** Which backend block is running: ids and cleanup are per block. */
let tag = "";

/** Runs a node script inside a netns (or on the host when ns is undefined). */
function node(ns: string | undefined, script: string, args: string[] = []): ChildProcess {
  const argv = ["-e", script, ...args];
  const child = ns
    ? spawn("ip", ["netns", "exec", ns, process.execPath, ...argv])
    : spawn(process.execPath, argv);
  children.push(child);
  return child;
}

/**
 * A TCP server that answers with the peer address it sees (or runs `onConnection`, JS source);
 * resolves once listening.
 */
async function server(
  ns: string | undefined,
  host: string,
  port: number,
  onConnection = '(s) => s.end("peer=" + s.remoteAddress)',
): Promise<ChildProcess> {
  const child = node(
    ns,
    `require("net").createServer(${onConnection})
      .listen(+process.argv[2], process.argv[1], () => console.log("ready"))`,
    [host, String(port)],
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
    child.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  });
  return child;
}

/** The path MTU and segment sizes (`ss -ti`) of the TCP connection to `dst` seen from `ns`. */
async function segmentSizes(
  ns: string | undefined,
  dst: string,
): Promise<{ pmtu: number; advmss: number; mss: number }> {
  const ss = ["ss", "-tin", "state", "established", "dst", dst];
  const { stdout } = ns
    ? await runCommand("ip", ["netns", "exec", ns, ...ss])
    : await runCommand("ss", ss.slice(1));
  const field = (name: string) => {
    const value = new RegExp(`\\b${name}:(\\d+)`).exec(stdout)?.[1];
    if (!value) throw new Error(`no ${name} of a connection to ${dst} in: ${stdout}`);
    return Number(value);
  };
  return { pmtu: field("pmtu"), advmss: field("advmss"), mss: field("mss") };
}

/** Connects from inside a netns: "ok <reply>", "refused", "timeout", or another error code. */
async function probe(ns: string, host: string, port: number, timeoutMs = 400): Promise<string> {
  const child = node(
    ns,
    `const s = require("net").connect(+process.argv[2], process.argv[1]);
     let out = "";
     s.setTimeout(+process.argv[3], () => { console.log("timeout"); process.exit(0); });
     s.on("data", (d) => (out += d));
     s.on("end", () => { console.log("ok " + out); process.exit(0); });
     s.on("error", (e) => { console.log(e.code === "ECONNREFUSED" ? "refused" : e.code); process.exit(0); });`,
    [host, String(port), String(timeoutMs)],
  );
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((resolve) => child.on("exit", resolve));
  return out.trim();
}

/** Connects from the host to a sandbox address. */
function hostConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    let out = "";
    socket.setTimeout(2000, () => reject(new Error("timeout")));
    socket.on("data", (d) => {
      out += d;
    });
    socket.on("end", () => resolve(out));
    socket.on("error", reject);
  });
}

async function create(name: string, allowInternet: boolean): Promise<SandboxNetwork> {
  const sandboxId = id(name);
  made.push(sandboxId);
  return createNetwork({ sandboxId, addresses: pool.allocate(sandboxId), allowInternet });
}

/** What the agent's firewall looks like on this host, to compare before and after. */
async function firewallState(): Promise<string> {
  const nft = await runCommand("nft", ["list", "tables"]).catch(() => ({ stdout: "" }));
  const rules = async (tool: string) =>
    (await runCommand(tool, []).catch(() => ({ stdout: "" }))).stdout
      .split("\n")
      .filter((l) => l.startsWith("-A") || l.startsWith(":WRENN"))
      .join("\n");
  return [
    nft.stdout.includes("table inet wrenn") ? "nft wrenn table" : "",
    await rules("iptables-save"),
    await rules("ip6tables-save"),
  ].join("\n");
}

beforeAll(async () => {
  previousIpForward = (await readFile("/proc/sys/net/ipv4/ip_forward", "utf8")).trim();
  // "Another host address" and a fake outside world, both on this machine.
  await runCommand("ip", ["-batch", "-"], {
    input: [
      // This kernel has no dummy driver: a veth pair whose peer stays unused does the same here.
      `link add ${DUMMY_IF} type veth peer name ${DUMMY_IF}p`,
      `addr add ${DUMMY_ADDRESS}/32 dev ${DUMMY_IF}`,
      `link set ${DUMMY_IF} up`,
      `link set ${DUMMY_IF}p up`,
      `netns add ${OUTSIDE_NS}`,
      `link add ${OUTSIDE_HOST_IF} type veth peer name eth0 netns ${OUTSIDE_NS}`,
      `addr add 203.0.113.1/30 dev ${OUTSIDE_HOST_IF}`,
      `link set ${OUTSIDE_HOST_IF} up`,
      "",
    ].join("\n"),
  });
  await runCommand("ip", ["-n", OUTSIDE_NS, "-batch", "-"], {
    input: `link set lo up\naddr add ${OUTSIDE_ADDRESS}/30 dev eth0\nlink set eth0 up\n`,
  });
});

async function stopChildren(): Promise<void> {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await new Promise((resolve) => child.on("exit", resolve));
    }
  }
}

afterAll(async () => {
  await stopChildren();
  for (const sandboxId of made) await removeNetwork(sandboxId);
  await runCommand("ip", ["link", "del", DUMMY_IF]).catch(() => {});
  await runCommand("ip", ["link", "del", OUTSIDE_HOST_IF]).catch(() => {});
  await runCommand("ip", ["netns", "del", OUTSIDE_NS]).catch(() => {});
  await writeFile("/proc/sys/net/ipv4/ip_forward", previousIpForward);

  // Leak check: nothing of this file is left.
  const debris = await listNetworkDebris();
  const ours = made.map(hostIfName);
  expect(debris.netns.filter((n) => n.includes(run))).toEqual([]);
  expect(debris.links.filter((l) => ours.includes(l))).toEqual([]);
  expect(existsSync(`/run/netns/${OUTSIDE_NS}`)).toBe(false);
  expect(existsSync(`/sys/class/net/${DUMMY_IF}`)).toBe(false);
});

describe("AddressPool", () => {
  it("carves /30s, reuses a sandbox's own slot, and is rebuilt by reserve", () => {
    const p = new AddressPool("10.9.0.0/29");
    expect(p.slots).toBe(2);
    const a = p.allocate("a");
    expect(a).toEqual({
      slot: 0,
      hostAddress: "10.9.0.1",
      sandboxAddress: "10.9.0.2",
      prefixLength: 30,
    });
    expect(p.allocate("a")).toEqual(a);
    expect(p.allocate("b").sandboxAddress).toBe("10.9.0.6");
    expect(() => p.allocate("c")).toThrow(/full/);
    p.release("a");
    expect(p.allocate("c").slot).toBe(0);

    const rebuilt = new AddressPool("10.9.0.0/29");
    rebuilt.reserve("b", rebuilt.slotOf("10.9.0.6")!);
    expect(() => rebuilt.reserve("x", 1)).toThrow(/held by sandbox b/);
    expect(rebuilt.allocate("c").slot).toBe(0);
    expect(() => new AddressPool("10.9.0.1/16")).toThrow(/host bits/);
  });
});

// The whole policy is tested on each backend: nftables (preferred) and the iptables fallback.
for (const backend of ["nftables", "iptables"] as const) {
  describe(`firewall: ${backend}`, () => {
    let before = "";
    let nftTablesBefore = "";
    let skip = false;

    beforeAll(async () => {
      tag = backend[0]!;
      process.env.WRENN_FIREWALL = backend;
      before = await firewallState();
      nftTablesBefore = (await runCommand("nft", ["list", "tables"]).catch(() => ({ stdout: "" })))
        .stdout;
      // The iptables run only proves something if no nftables ruleset of the agent is loaded.
      skip = backend === "iptables" && before.includes("nft wrenn table");
      if (skip)
        console.log("iptables backend not tested: another agent's nftables table is loaded");
      await ensureHostFirewall({ cidr: pool.cidr });
    });

    beforeEach((ctx) => {
      if (skip) ctx.skip();
    });

    afterAll(async () => {
      await stopChildren();
      for (const sandboxId of made) await removeNetwork(sandboxId);
      if (!before.includes(backend === "nftables" ? "nft wrenn table" : ":WRENN-INPUT")) {
        await removeHostFirewall();
      }
      // iptables-nft leaves empty built-in tables behind: drop the ones this block brought.
      for (const table of ["ip raw", "ip filter", "ip nat", "ip6 filter"]) {
        if (!nftTablesBefore.includes(`table ${table}\n`)) {
          await runCommand("nft", ["delete", "table", ...table.split(" ")]).catch(() => {});
        }
      }
      expect(await firewallState()).toBe(before);
      delete process.env.WRENN_FIREWALL;
    });

    describe("sandbox network", () => {
      let a: SandboxNetwork;
      let b: SandboxNetwork;
      let c: SandboxNetwork;

      beforeAll(async () => {
        a = await create("a", false);
        b = await create("b", false);
        c = await create("c", true);
      });

      it("gives each sandbox its netns, veth, addresses, lo and default route", async () => {
        expect(a.netnsPath).toBe(`/run/netns/wrenn-${a.sandboxId}`);
        expect(a.hostIf).toMatch(/^wv[0-9a-f]{8}h$/);
        const { stdout } = await runCommand("ip", ["-n", a.netnsName, "-4", "-o", "addr"]);
        expect(stdout).toContain(`127.0.0.1/8`);
        expect(stdout).toContain(`${a.sandboxAddress}/30`);
        const routes = await runCommand("ip", ["-n", a.netnsName, "route"]);
        expect(routes.stdout).toContain(`default via ${a.hostAddress} dev eth0`);
        expect(await listInternetMembers()).toContain(c.hostIf);
        expect(await listInternetMembers()).not.toContain(a.hostIf);
      });

      it("lets the host reach a server in the sandbox on its address", async () => {
        await server(a.netnsName, a.sandboxAddress, 49983);
        expect(await hostConnect(a.sandboxAddress, 49983)).toBe(`peer=${a.hostAddress}`);
      });

      it("drops sandbox → host on every host address, including its own veth and loopback", async () => {
        const port = await listenPort("0.0.0.0");
        await server(undefined, "0.0.0.0", port); // host: 127.0.0.1, veth host sides, spare address
        // Control: the server answers on those addresses from the host itself.
        expect(await hostConnect(a.hostAddress, port)).toMatch(/^peer=/);
        expect(await hostConnect(DUMMY_ADDRESS, port)).toMatch(/^peer=/);
        const results = await Promise.all([
          probe(a.netnsName, a.hostAddress, port),
          probe(a.netnsName, DUMMY_ADDRESS, port),
          probe(a.netnsName, b.hostAddress, port),
          // 127.0.0.1 inside the sandbox is its own loopback.
          probe(a.netnsName, "127.0.0.1", port),
          // Even with allowInternet, the host is not "outside".
          probe(c.netnsName, c.hostAddress, port),
          probe(c.netnsName, DUMMY_ADDRESS, port),
        ]);
        expect(results).toEqual(["timeout", "timeout", "timeout", "refused", "timeout", "timeout"]);
      });

      it("drops packets to the host's 127.0.0.1 sent out of the veth (route_localnet trick)", async () => {
        const port = await listenPort();
        await server(undefined, "127.0.0.1", port);
        // Make the host willing to accept 127/8 from the veth, and make the sandbox send 127.0.0.1
        // out of eth0 instead of its own loopback: only the firewall stands in the way now.
        await writeFile(`/proc/sys/net/ipv4/conf/${c.hostIf}/route_localnet`, "1");
        await runCommand("ip", ["-n", c.netnsName, "-batch", "-"], {
          input: [
            "route del local 127.0.0.1 dev lo table local",
            "route del local 127.0.0.0/8 dev lo table local",
            `route add 127.0.0.1/32 via ${c.hostAddress} dev eth0`,
            "",
          ].join("\n"),
        });
        expect(await probe(c.netnsName, "127.0.0.1", port)).toBe("timeout");
      });

      it("drops sandbox → sandbox, even with internet", async () => {
        await server(b.netnsName, b.sandboxAddress, 8080);
        expect(await hostConnect(b.sandboxAddress, 8080)).toBe(`peer=${b.hostAddress}`);
        expect(await probe(a.netnsName, b.sandboxAddress, 8080)).toBe("timeout");
        expect(await probe(c.netnsName, b.sandboxAddress, 8080)).toBe("timeout");
      });

      it("masquerades egress only for sandboxes that allow internet", async () => {
        await server(OUTSIDE_NS, OUTSIDE_ADDRESS, 8081);
        expect(await probe(c.netnsName, OUTSIDE_ADDRESS, 8081)).toBe("ok peer=203.0.113.1");
        expect(await probe(a.netnsName, OUTSIDE_ADDRESS, 8081)).toBe("timeout");
      });

      it("talks to the host in 64 KiB packets and to the internet in Ethernet-sized ones", async () => {
        // A server in the sandbox, one outside; a connection held open to each while `ss` reads
        // the segment sizes TCP settled on (the host's to the sandbox, the sandbox's outward).
        // Servers that keep each connection open and silent.
        await server(c.netnsName, c.sandboxAddress, 49984, "() => {}");
        await server(OUTSIDE_NS, OUTSIDE_ADDRESS, 8082, "() => {}");
        const toSandbox = net.connect(49984, c.sandboxAddress);
        await new Promise((resolve, reject) =>
          toSandbox.once("connect", resolve).once("error", reject),
        );
        const outward = node(
          c.netnsName,
          `require("net").connect(8082, process.argv[1], () => console.log("ready"));
           setTimeout(() => process.exit(0), 20000);`,
          [OUTSIDE_ADDRESS],
        );
        await new Promise((resolve) => outward.stdout?.on("data", resolve));
        try {
          const host = await segmentSizes(undefined, c.sandboxAddress);
          const sandbox = await segmentSizes(c.netnsName, OUTSIDE_ADDRESS);
          expect(host).toMatchObject({ pmtu: 65_535, advmss: 65_483 });
          expect(sandbox.pmtu).toBe(1500);
          expect(sandbox.advmss).toBeLessThanOrEqual(1460);
          expect(sandbox.mss).toBeLessThanOrEqual(1460);
        } finally {
          toSandbox.destroy();
          outward.kill("SIGKILL");
        }
      });

      it("re-adopts a network and rebuilds the pool from it", async () => {
        const fresh = new AddressPool(pool.cidr);
        const opened = await openNetwork(c.sandboxId, fresh);
        expect(opened).toEqual(c);
        expect(fresh.inUse().get(c.sandboxId)).toBe(c.slot);
        expect(await openNetwork(id("never"), fresh)).toBeUndefined();
      });

      it("refuses to create a network twice, leaving the first intact", async () => {
        await expect(
          createNetwork({
            sandboxId: a.sandboxId,
            addresses: pool.addressesOf(a.slot),
            allowInternet: false,
          }),
        ).rejects.toMatchObject({ code: "already_exists" });
        expect(existsSync(a.netnsPath)).toBe(true);
        expect(existsSync(`/sys/class/net/${a.hostIf}`)).toBe(true);
      });
    });

    describe("rollback and removal", () => {
      it("rolls back everything when a later step fails", async () => {
        const sandboxId = id("broken");
        made.push(sandboxId);
        const good = pool.allocate(sandboxId);
        // A gateway outside the sandbox's /30: the in-netns route step fails after netns and veth exist.
        const addresses = { ...good, hostAddress: pool.addressesOf(good.slot + 1).hostAddress };
        await expect(
          createNetwork({ sandboxId, addresses, allowInternet: true }),
        ).rejects.toMatchObject({
          code: "internal",
        });
        expect(existsSync(`/run/netns/wrenn-${sandboxId}`)).toBe(false);
        expect(existsSync(`/sys/class/net/${hostIfName(sandboxId)}`)).toBe(false);
        expect(await listInternetMembers()).not.toContain(hostIfName(sandboxId));
      });

      it("removes idempotently", async () => {
        const n = await create("twice", true);
        expect(await removeNetwork(n.sandboxId)).toEqual([]);
        expect(existsSync(n.netnsPath)).toBe(false);
        expect(existsSync(`/sys/class/net/${n.hostIf}`)).toBe(false);
        expect(await listInternetMembers()).not.toContain(n.hostIf);
        expect(await removeNetwork(n.sandboxId)).toEqual([]);
      });

      it("keeps going after a failed step and returns every error", async () => {
        const sandboxId = id("stuck");
        made.push(sandboxId);
        const hostIf = hostIfName(sandboxId);
        // A directory where the netns file should be cannot be removed by `ip netns del`.
        const fakeNetns = `/run/netns/wrenn-${sandboxId}`;
        await mkdir(`${fakeNetns}/x`, { recursive: true });
        await runCommand("ip", [
          "link",
          "add",
          hostIf,
          "type",
          "veth",
          "peer",
          "name",
          `wrtp${run}`,
        ]);
        try {
          const errors = await removeNetwork(sandboxId);
          expect(errors).toHaveLength(1);
          expect(errors[0]?.message).toMatch(/remove netns/);
          expect(existsSync(`/sys/class/net/${hostIf}`)).toBe(false);
        } finally {
          await rm(fakeNetns, { recursive: true, force: true });
        }
      });

      it("finds and cleans debris of unknown sandboxes only", async () => {
        const kept = await create("kept", false);
        const leaked = await create("leaked", true);
        const others = made.filter((m) => m !== leaked.sandboxId);
        const debris = await listNetworkDebris(others);
        expect(debris.netns).toContain(leaked.netnsName);
        expect(debris.links).toContain(leaked.hostIf);
        expect(debris.internetMembers).toContain(leaked.hostIf);
        expect(debris.netns).not.toContain(kept.netnsName);
        // Only clean what is ours: other suites may run sandboxes of their own on this host.
        const foreign = debris.netns
          .filter((n) => !n.includes(run))
          .map((n) => n.slice("wrenn-".length));
        expect(await cleanupNetworkDebris([...others, ...foreign])).toEqual([]);
        expect(existsSync(leaked.netnsPath)).toBe(false);
        expect(existsSync(`/sys/class/net/${leaked.hostIf}`)).toBe(false);
        expect(existsSync(kept.netnsPath)).toBe(true);
      });

      it("creates a network in a few ms (figures in the log)", async () => {
        const times: number[] = [];
        for (let i = 0; i < 20; i++) {
          const started = performance.now();
          const n = await create(`speed${i}`, i % 2 === 0);
          times.push(performance.now() - started);
          await removeNetwork(n.sandboxId);
        }
        times.sort((x, y) => x - y);
        console.log(
          `createNetwork over 20: p50 ${times[10]?.toFixed(1)} ms, max ${times[19]?.toFixed(1)} ms`,
        );
        expect(times).toHaveLength(20);
      });
    });
  });
}
