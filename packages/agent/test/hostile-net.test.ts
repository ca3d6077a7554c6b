import { execFileSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { createServer, connect as tcpConnect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeAll, describe, expect, it } from "vitest";
import {
  hostFirewallInstalled,
  hostIfName,
  listInternetMembers,
  removeHostFirewall,
  SANDBOX_IF,
} from "../src/network/index.js";
import { type HostileSandbox, hostileRuntime } from "./fixtures/hostile-runtime.js";
import {
  connectFrom,
  hostConnect,
  hostVethAddress,
  listen,
  otherHostAddresses,
} from "./fixtures/net-probe.js";

function hostConnectPath(path: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tcpConnect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
  });
}

function linkLocal(ifName: string): string {
  const out = execFileSync("ip", ["-6", "-o", "addr", "show", "dev", ifName, "scope", "link"]);
  const m = /inet6 (fe80:[0-9a-f:]+)\//.exec(out.toString());
  if (!m?.[1]) throw new Error(`no IPv6 link-local address on ${ifName}`);
  return m[1];
}

const sandboxIp = (s: HostileSandbox) => s.info.envdAddress.split(":")[0]!;
const envdPort = (s: HostileSandbox) => Number(s.info.envdAddress.split(":")[1]);

describe("hostile sandbox: network", { timeout: 120_000 }, () => {
  const hx = hostileRuntime({ netBase: 48 });
  let a: HostileSandbox;
  let b: HostileSandbox;
  let net: HostileSandbox;
  const SANDBOX_PORT = 7070;

  beforeAll(async () => {
    [a, b, net] = await Promise.all([
      hx.create("net-a"),
      hx.create("net-b"),
      // Egress allowed: it must still reach nothing on this host or in other sandboxes.
      hx.create("net-inet", { allowInternetAccess: true }),
    ]);
    // A TCP server inside b, as its root, on every address of b; runs while its stream is open.
    const stop = new AbortController();
    void b.root
      .sh(
        `exec node -e 'require("net").createServer((s) => { s.on("error", () => {}); s.end("b\\n"); }).listen(${SANDBOX_PORT}, "0.0.0.0")'`,
        { signal: stop.signal },
      )
      .catch(() => {});
    hx.defer(() => stop.abort());
    for (let i = 0; (await hostConnect(sandboxIp(b), SANDBOX_PORT)) !== "connected"; i++) {
      if (i > 100) throw new Error("server in sandbox b did not start");
      await sleep(50);
    }
  }, 120_000);

  it("reaches no TCP server on the host's loopback, veth sides or other addresses, nor another sandbox", async () => {
    const loopback = await listen("127.0.0.1");
    hx.defer(() => loopback.server.close());
    const wildcard = await listen("0.0.0.0");
    hx.defer(() => wildcard.server.close());

    const hostTargets = [
      `127.0.0.1:${loopback.port}`,
      `127.0.0.1:${wildcard.port}`,
      ...[a, b, net].map((s) => `${hostVethAddress(s.id)}:${wildcard.port}`),
      ...otherHostAddresses().map((ip) => `${ip}:${wildcard.port}`),
    ];
    // Control: from the host every one of these answers, so the servers do listen there.
    for (const target of hostTargets) {
      const i = target.lastIndexOf(":");
      expect(await hostConnect(target.slice(0, i), Number(target.slice(i + 1))), target).toBe(
        "connected",
      );
    }
    // And b's server and envd answer the host (the agent → envd path).
    expect(await hostConnect(sandboxIp(b), SANDBOX_PORT)).toBe("connected");
    expect(await hostConnect(sandboxIp(b), envdPort(b))).toBe("connected");
    const hostPeers = loopback.peers.length + wildcard.peers.length;

    for (const from of [a, net]) {
      const targets = [
        ...hostTargets,
        `${sandboxIp(b)}:${SANDBOX_PORT}`,
        `${sandboxIp(b)}:${envdPort(b)}`,
        `${sandboxIp(from === a ? net : a)}:${envdPort(a)}`,
      ];
      const got = await connectFrom(from, targets);
      expect([...got.keys()].sort()).toEqual([...targets].sort());
      for (const target of targets) {
        // A sandbox's own 127.0.0.1 is its own loopback: nothing listens there ("refused").
        const allowed = target.startsWith("127.0.0.1:") ? ["ECONNREFUSED", "timeout"] : ["timeout"];
        expect(allowed, `${from.id} → ${target}: ${got.get(target)}`).toContain(got.get(target));
      }
    }
    // No connection from a sandbox ever reached the host servers.
    expect(loopback.peers.length + wildcard.peers.length).toBe(hostPeers);

    // Control for the probe itself: it does report "connected" where something answers
    // (the sandbox's own envd), and the host → envd path still works.
    const own = `${sandboxIp(a)}:${envdPort(a)}`;
    expect((await connectFrom(a, [own])).get(own)).toBe("connected");
    expect((await a.user.sh("echo alive")).stdout).toBe("alive\n");
  });

  it("reaches nothing on the host over IPv6 (link-local of its veth) or UDP", async () => {
    const v6 = await listen("::");
    hx.defer(() => v6.server.close());
    const udp = createSocket("udp4");
    hx.defer(() => udp.close());
    const datagrams: string[] = [];
    udp.on("message", (msg) => datagrams.push(msg.toString()));
    await new Promise<void>((resolve) => udp.bind(0, "0.0.0.0", resolve));
    const udpPort = udp.address().port;

    const hostLinkLocal = linkLocal(hostIfName(a.id));
    expect(await hostConnect(`${hostLinkLocal}%${hostIfName(a.id)}`, v6.port)).toBe("connected");
    const udpTargets = [hostVethAddress(a.id), ...otherHostAddresses(), "127.0.0.1"];
    // Control: the host's own datagrams to those addresses do arrive.
    const control = createSocket("udp4");
    for (const ip of udpTargets) control.send(`control ${ip}`, udpPort, ip);
    for (let i = 0; i < 50 && datagrams.length < udpTargets.length; i++) await sleep(20);
    control.close();
    expect(datagrams.length).toBe(udpTargets.length);
    const peersBefore = v6.peers.length;

    // Wait out duplicate address detection so the sandbox's link-local address is usable.
    await a.root.sh(
      `for i in $(seq 50); do ip -6 addr show dev ${SANDBOX_IF} | grep -q tentative || break; sleep 0.1; done`,
    );
    const target = `${hostLinkLocal}%${SANDBOX_IF}:${v6.port}`;
    const got = await connectFrom(a, [target]);
    console.log(`IPv6 sandbox → host veth link-local: ${got.get(target)}`);
    expect(["timeout", "ENETUNREACH", "EHOSTUNREACH"], got.get(target)).toContain(got.get(target));
    const sent = await a.root.sh(
      `node -e 'const s = require("dgram").createSocket("udp4"); let n = ${udpTargets.length}; for (const ip of process.argv.slice(1)) s.send("from-sandbox", ${udpPort}, ip, () => { if (--n === 0) s.close(); });' ${udpTargets.join(" ")}; echo sent=$?`,
    );
    expect(sent.stdout).toBe("sent=0\n");
    await sleep(500);
    expect(datagrams.filter((d) => d === "from-sandbox")).toEqual([]);
    expect(v6.peers.length).toBe(peersBefore);
  });

  it("cannot connect to the host's abstract unix sockets (they belong to the host's netns)", async () => {
    const name = `wrenn-hostile-${process.pid}-${Date.now()}`;
    const server = createServer((socket) => {
      socket.on("error", () => {}); // the control hangs up at once
      socket.end("host\n");
    });
    await new Promise<void>((resolve) => server.listen(`\0${name}`, resolve));
    hx.defer(() => server.close());
    expect(await hostConnectPath(`\0${name}`)).toBe("connected");
    const res = await a.root.sh(
      `node -e 'const s = require("net").connect("\\0${name}"); s.on("connect", () => { console.log("connected"); s.destroy(); }); s.on("error", (e) => console.log(e.code));'`,
    );
    expect(res.stdout).toBe("ECONNREFUSED\n");
  });

  it("cannot change its addresses, routes or firewall, even as root", async () => {
    const res = await a.root.sh(
      [
        `ip addr add 10.213.255.254/32 dev ${SANDBOX_IF}; echo addr=$?`,
        `ip route add 127.0.0.0/8 dev ${SANDBOX_IF}; echo route=$?`,
        `ip link set ${SANDBOX_IF} down; echo link=$?`,
      ].join("; "),
    );
    for (const key of ["addr", "route", "link"]) {
      expect(res.stdout, key).toMatch(new RegExp(`^${key}=[1-9]\\d*$`, "m"));
    }
    // envd still answers after all of it.
    expect((await a.user.sh("echo alive")).stdout).toBe("alive\n");
  });

  it("gets its firewall back within a few seconds when something deletes it from the host", async () => {
    const wildcard = await listen("0.0.0.0");
    hx.defer(() => wildcard.server.close());
    await removeHostFirewall(); // as `nft flush ruleset` or another program would
    // Back, with the sandbox that had internet still a member.
    const restored = async () =>
      (await hostFirewallInstalled()) && (await listInternetMembers()).includes(hostIfName(net.id));
    for (let i = 0; !(await restored()); i++) {
      if (i > 200) throw new Error("the agent did not put its firewall back");
      await sleep(50);
    }
    const target = `${hostVethAddress(a.id)}:${wildcard.port}`;
    expect((await connectFrom(a, [target])).get(target)).toBe("timeout");
    expect(wildcard.peers).toEqual([]);
  });
});
