import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/logger/index.js";
import {
  AddressPool,
  createNetwork,
  hostFirewallInstalled,
  keepHostFirewallState,
  listInternetMembers,
  removeHostFirewall,
  removeNetwork,
  type SandboxNetwork,
} from "../src/network/index.js";
import { HostWatch } from "../src/runtime/host-watch.js";
import type { LiveBase } from "../src/runtime/sandbox-table.js";
import type { SandboxRecord } from "../src/state/state-store.js";

// An agent's runtimes (namespace and microVM) share one address pool and, with it, one host
// firewall check. Two watches over one pool stand for them; their sandboxes are real network
// namespaces and veths made here (no processes: the records are the fields the watch reads).
// Traffic: none.

const run = randomBytes(3).toString("hex");
const pool = new AddressPool("10.213.224.0/24");

interface Live extends LiveBase {
  network: SandboxNetwork;
}

describe("host watch: one firewall check for the runtimes of one pool", { timeout: 60_000 }, () => {
  let restoreHost: () => Promise<void> = async () => {};
  const made: string[] = [];
  const watches: HostWatch<Live>[] = [];

  /**
   * A watch as a runtime makes one, started (which installs the firewall, as a runtime's first
   * create does), then one live sandbox whose network has internet.
   */
  async function runtimeWith(name: string): Promise<{ watch: HostWatch<Live>; live: Live }> {
    const lives: Live[] = [];
    const watch = new HostWatch<Live>({
      pool,
      logger: silentLogger(),
      sandboxes: () => lives,
      network: (l) => l.network,
      alive: async () => true,
    });
    watches.push(watch);
    await watch.ensureStarted();
    const sandboxId = `hw${run}-${name}`;
    made.push(sandboxId);
    const network = await createNetwork({
      sandboxId,
      addresses: pool.allocate(sandboxId),
      allowInternet: true,
    });
    const record = { id: sandboxId, phase: "running", allowInternetAccess: true };
    const live: Live = {
      record: record as unknown as SandboxRecord,
      state: "running",
      queue: Promise.resolve(),
      network,
    };
    lives.push(live);
    return { watch, live };
  }

  beforeAll(async () => {
    restoreHost = await keepHostFirewallState();
  });

  afterAll(async () => {
    for (const watch of watches) watch.stop();
    for (const sandboxId of made) await removeNetwork(sandboxId);
    await restoreHost();
  });

  it("puts the firewall back once and every runtime's sandboxes in it again", async () => {
    const a = await runtimeWith("a");
    const b = await runtimeWith("b");
    const members = [a.live.network.hostIf, b.live.network.hostIf];
    expect(await listInternetMembers()).toEqual(expect.arrayContaining(members));

    await removeHostFirewall(); // as `nft flush ruleset` or another program would
    const restored = async () => {
      if (!(await hostFirewallInstalled())) return false;
      const now = await listInternetMembers();
      return members.every((m) => now.includes(m));
    };
    for (let i = 0; !(await restored()); i++) {
      if (i > 200) throw new Error("the firewall or a runtime's sandbox did not come back");
      await sleep(50);
    }

    // One runtime stopping leaves the other's check running: removed again, back again.
    a.watch.stop();
    await removeHostFirewall();
    const bAgain = async () =>
      (await hostFirewallInstalled()) && (await listInternetMembers()).includes(members[1]!);
    for (let i = 0; !(await bAgain()); i++) {
      if (i > 200) throw new Error("the remaining runtime's check stopped with the other");
      await sleep(50);
    }
  });
});
