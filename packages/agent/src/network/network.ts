import { access, readdir } from "node:fs/promises";
import type { Logger } from "pino";
import { AgentError } from "../errors.js";
import {
  CommandError,
  type CommandSpec,
  Rollback,
  runCommand,
  runCommands,
} from "../host/index.js";
import { assertSandboxId } from "../state/index.js";
import type { AddressPool, SandboxAddresses } from "./address-pool.js";
import { applyEgress, type EgressRules, listEgressTables, removeEgress } from "./egress/index.js";
import {
  addInternetMemberCommand,
  listInternetMembers,
  removeInternetMember,
  usesNftables,
} from "./firewall.js";
import { hostIfName, isHostIfName, netnsName, SANDBOX_IF, sandboxIdOfNetns } from "./names.js";

const NETNS_DIR = "/run/netns";
const SYS_NET = "/sys/class/net";
/**
 * The veth pair's MTU: traffic between the agent and its sandbox (envd calls, file transfers,
 * proxied ports) goes in 64 KiB packets, as on loopback. A sender writing 1 MiB at a time spent
 * half the CPU per byte it did at 1500 (64 KiB writes gain little). Beyond the host, the
 * sandbox's default route keeps Ethernet's MTU, so its TCP to the internet advertises and sends
 * the segment size every network carries.
 */
const LINK_MTU = 65_535;
const INTERNET_MTU = 1_500;

/** Everything the runtime needs to launch into a sandbox's network and reach its envd. */
export interface SandboxNetwork {
  sandboxId: string;
  netnsName: string;
  /** Bind-mounted netns file: pass to bwrap/nsenter/setns. */
  netnsPath: string;
  /** Host side of the veth (in the host's netns). */
  hostIf: string;
  /** Sandbox side of the veth, inside the netns. */
  sandboxIf: string;
  hostAddress: string;
  sandboxAddress: string;
  prefixLength: number;
  slot: number;
  allowInternet: boolean;
}

export interface CreateNetworkOptions {
  sandboxId: string;
  /** From AddressPool.allocate/reserve. */
  addresses: SandboxAddresses;
  allowInternet: boolean;
  /** allowOut/denyOut of the sandbox; none = everything public when allowInternet. */
  egress?: EgressRules;
  log?: Logger;
  /**
   * Called once the netns and its links are up, before the egress rules and the firewall's
   * @internet membership: a process may start in the netns meanwhile, walled in until they are.
   */
  onLinked?: (network: SandboxNetwork) => void;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** ip/nft said the thing is already gone. */
function isGone(err: unknown): boolean {
  return (
    err instanceof CommandError &&
    // "No such device": the veth vanished with its netns between the lookup and the delete.
    /Cannot find device|No such device|No such file or directory|does not exist/.test(err.stderr)
  );
}

async function deleteHostIf(hostIf: string): Promise<void> {
  try {
    // Deleting one end of a veth deletes both, at once; a netns delete is asynchronous.
    await runCommand("ip", ["link", "del", hostIf]);
  } catch (err) {
    if (!isGone(err)) throw err;
  }
}

async function deleteNetns(name: string): Promise<void> {
  try {
    await runCommand("ip", ["netns", "del", name]);
  } catch (err) {
    if (!isGone(err)) throw err;
  }
}

/**
 * Makes a sandbox's netns, veth pair (sandbox side is eth0 inside), addresses, lo and default
 * route with one spawn (a shell running two `ip -batch`), then its firewall membership, DNS
 * forwarder and egress table (one nft transaction). On any failure everything made so far is removed
 * (rollback list, newest first) and the first error is thrown, with rollback errors as its cause.
 */
export async function createNetwork(options: CreateNetworkOptions): Promise<SandboxNetwork> {
  const { sandboxId, addresses, allowInternet, egress, log } = options;
  assertSandboxId(sandboxId);
  const netns = netnsName(sandboxId);
  const hostIf = hostIfName(sandboxId);
  const netnsPath = `${NETNS_DIR}/${netns}`;
  // Checked first so the rollback below only ever deletes what this call made.
  if ((await exists(netnsPath)) || (await exists(`${SYS_NET}/${hostIf}`))) {
    throw new AgentError("already_exists", `network of sandbox ${sandboxId} already exists`);
  }

  const hostCidr = `${addresses.hostAddress}/${addresses.prefixLength}`;
  const sandboxCidr = `${addresses.sandboxAddress}/${addresses.prefixLength}`;
  const network = networkOf(sandboxId, addresses, allowInternet);
  const rollback = new Rollback();
  const started = performance.now();

  try {
    const commands: CommandSpec[] = [
      {
        file: "ip",
        args: ["-batch", "-"],
        input: [
          `netns add ${netns}`,
          `link add ${hostIf} mtu ${LINK_MTU} type veth peer name ${SANDBOX_IF} mtu ${LINK_MTU} netns ${netns}`,
          `addr add ${hostCidr} dev ${hostIf}`,
          `link set ${hostIf} up`,
          "",
        ].join("\n"),
      },
      {
        file: "ip",
        args: ["-n", netns, "-batch", "-"],
        input: [
          "link set lo up",
          `addr add ${sandboxCidr} dev ${SANDBOX_IF}`,
          `link set ${SANDBOX_IF} up`,
          `route add default via ${addresses.hostAddress} mtu ${INTERNET_MTU}`,
          "",
        ].join("\n"),
      },
    ];
    // Registered before the work: the batch may fail halfway. Undo steps tolerate absence and
    // only ever meet what this call made (existence was checked above).
    rollback.add(
      () => deleteNetns(netns),
      () => deleteHostIf(hostIf),
    );
    // On nftables the @internet membership goes in with the egress table and the DNS member,
    // in one transaction; iptables has no egress rules, so it is one more command here.
    const nft = await usesNftables();
    if (allowInternet) {
      if (!nft) commands.push(await addInternetMemberCommand(hostIf, addresses.sandboxAddress));
      rollback.add(() => removeInternetMember(hostIf));
    }
    await runCommands(commands);
    options.onLinked?.(network);
    if (egress || allowInternet) {
      rollback.add(() => removeEgress(hostIf));
      await applyEgress(network, egress, {
        fresh: true,
        joinInternet: allowInternet && nft,
        ...(log && { log }),
      });
    }
  } catch (err) {
    const rollbackErrors = await rollback.undo();
    const message = err instanceof Error ? err.message : String(err);
    log?.warn(
      { sandboxId, err: message, rollbackErrors: rollbackErrors.length },
      "network: create failed",
    );
    throw new AgentError("internal", `create network of sandbox ${sandboxId}: ${message}`, {
      cause: rollbackErrors.length ? new AggregateError([err, ...rollbackErrors]) : err,
    });
  }
  log?.debug(
    { sandboxId, ms: Math.round((performance.now() - started) * 100) / 100 },
    "network: created",
  );
  return network;
}

/**
 * Removes a sandbox's firewall membership, veth and netns. Idempotent: what is already gone is not
 * an error. Every step is tried; all failures are returned (an empty array means all removed).
 */
export async function removeNetwork(sandboxId: string): Promise<AgentError[]> {
  assertSandboxId(sandboxId);
  const hostIf = hostIfName(sandboxId);
  const steps: [string, () => Promise<void>][] = [
    // One nft transaction while this process runs the sandbox's DNS forwarder.
    ["firewall membership and egress rules", () => removeEgress(hostIf, { leaveInternet: true })],
    ["netns", () => deleteNetns(netnsName(sandboxId))],
    // The netns goes away asynchronously; deleting the veth ourselves makes it gone on return.
    ["veth", () => deleteHostIf(hostIf)],
  ];
  const errors: AgentError[] = [];
  for (const [what, run] of steps) {
    try {
      await run();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      errors.push(
        new AgentError("internal", `remove ${what} of sandbox ${sandboxId}: ${message}`, {
          cause: err,
        }),
      );
    }
  }
  return errors;
}

/**
 * Re-adoption after an agent restart: the network of a sandbox as it is on the host, or undefined
 * if its netns is gone; its /30 is reserved in `pool` (how the pool is rebuilt) and its egress
 * rules are put back in place. Throws if the
 * netns exists but is half made (no veth or no address) or its address is outside the pool.
 */
export async function openNetwork(
  sandboxId: string,
  pool: AddressPool,
  egress?: EgressRules,
): Promise<SandboxNetwork | undefined> {
  assertSandboxId(sandboxId);
  const netns = netnsName(sandboxId);
  const netnsPath = `${NETNS_DIR}/${netns}`;
  if (!(await exists(netnsPath))) return undefined;
  const hostIf = hostIfName(sandboxId);
  let addr: { local: string; prefixlen: number } | undefined;
  try {
    const { stdout } = await runCommand("ip", [
      "-n",
      netns,
      "-j",
      "-4",
      "addr",
      "show",
      "dev",
      SANDBOX_IF,
    ]);
    const parsed = JSON.parse(stdout) as { addr_info?: { local: string; prefixlen: number }[] }[];
    addr = parsed[0]?.addr_info?.[0];
  } catch (err) {
    if (!isGone(err)) throw err;
  }
  if (!addr || !(await exists(`${SYS_NET}/${hostIf}`))) {
    throw new AgentError("failed_precondition", `network of sandbox ${sandboxId} is half made`);
  }
  const slot = pool.slotOf(addr.local);
  if (slot === undefined) {
    throw new AgentError(
      "failed_precondition",
      `sandbox ${sandboxId} has ${addr.local}, outside ${pool.cidr}`,
    );
  }
  const addresses = pool.reserve(sandboxId, slot);
  const members = await listInternetMembers();
  const network = networkOf(sandboxId, addresses, members.includes(hostIf));
  // The DNS forwarder died with the previous agent: a new one, and the rules pointed at it.
  if (egress || network.allowInternet) await applyEgress(network, egress);
  return network;
}

/** Network leftovers that belong to no sandbox in `keepIds`. */
export interface NetworkDebris {
  /** netns names (`wrenn-<id>`). */
  netns: string[];
  /** host-side veths (`wv…h`). */
  links: string[];
  /** @internet members (host veth names) whose sandbox is not kept. */
  internetMembers: string[];
  /** Host veth names of egress tables whose sandbox is not kept. */
  egressTables: string[];
}

export async function listNetworkDebris(keepIds: Iterable<string> = []): Promise<NetworkDebris> {
  const keep = new Set(keepIds);
  const keepIfs = new Set([...keep].map(hostIfName));
  const readNames = (dir: string) => readdir(dir).catch(() => [] as string[]);
  const [netnsNames, links, members, egressTables] = await Promise.all([
    readNames(NETNS_DIR),
    readNames(SYS_NET),
    listInternetMembers(),
    listEgressTables(),
  ]);
  return {
    netns: netnsNames.filter((name) => {
      const id = sandboxIdOfNetns(name);
      return id !== undefined && !keep.has(id);
    }),
    links: links.filter((name) => isHostIfName(name) && !keepIfs.has(name)),
    internetMembers: members.filter((name) => !keepIfs.has(name)),
    egressTables: egressTables.filter((name) => !keepIfs.has(name)),
  };
}

/** Removes all network debris not in `keepIds`; returns every failure. */
export async function cleanupNetworkDebris(keepIds: Iterable<string> = []): Promise<AgentError[]> {
  const debris = await listNetworkDebris(keepIds);
  const errors: AgentError[] = [];
  const attempt = async (what: string, run: () => Promise<void>) => {
    try {
      await run();
    } catch (err) {
      errors.push(new AgentError("internal", `remove ${what}`, { cause: err }));
    }
  };
  for (const name of debris.internetMembers) {
    await attempt(`@internet member ${name}`, () => removeInternetMember(name));
  }
  for (const name of debris.egressTables) {
    await attempt(`egress rules of ${name}`, () => removeEgress(name));
  }
  for (const name of debris.links) await attempt(`veth ${name}`, () => deleteHostIf(name));
  for (const name of debris.netns) await attempt(`netns ${name}`, () => deleteNetns(name));
  return errors;
}

/** A sandbox's network as its names and addresses say it is (all derived from the id and slot). */
function networkOf(
  sandboxId: string,
  addresses: SandboxAddresses,
  allowInternet: boolean,
): SandboxNetwork {
  const netns = netnsName(sandboxId);
  return {
    sandboxId,
    netnsName: netns,
    netnsPath: `${NETNS_DIR}/${netns}`,
    hostIf: hostIfName(sandboxId),
    sandboxIf: SANDBOX_IF,
    hostAddress: addresses.hostAddress,
    sandboxAddress: addresses.sandboxAddress,
    prefixLength: addresses.prefixLength,
    slot: addresses.slot,
    allowInternet,
  };
}
