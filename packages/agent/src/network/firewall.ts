import { readFile, writeFile } from "node:fs/promises";
import { AgentError } from "../errors.js";
import type { CommandSpec } from "../host/index.js";
import { sandboxCidrFromEnv } from "./address-pool.js";
import { iptablesFirewall } from "./firewall-iptables.js";
import { type DnsMember, nftFirewall } from "./firewall-nft.js";

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/** Destinations a sandbox never reaches, even with internet: local, private, shared, special. */
const BLOCKED_RANGES = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "224.0.0.0/3",
];

export type FirewallBackendName = "nftables" | "iptables";
type Backend = typeof nftFirewall | typeof iptablesFirewall;

let detected: Promise<Backend> | undefined;

/**
 * nftables when `nft` is installed, else iptables. WRENN_FIREWALL=nftables|iptables forces one
 * (tests use it to run the iptables path on hosts that have both).
 */
async function backend(): Promise<Backend> {
  const forced = process.env.WRENN_FIREWALL;
  if (forced === "iptables") return iptablesFirewall;
  if (forced === "nftables") return nftFirewall;
  detected ??= (async () => {
    if (await nftFirewall.available()) return nftFirewall;
    if (await iptablesFirewall.available()) return iptablesFirewall;
    throw new AgentError(
      "failed_precondition",
      "neither nft nor iptables-restore found: install Debian's nftables package",
    );
  })();
  return detected;
}

export interface HostFirewallOptions {
  /** The sandbox address pool (default WRENN_SANDBOX_CIDR or 10.213.0.0/16); never reachable. */
  cidr?: string;
  /** Extra destination ranges sandboxes must never reach (e.g. a LAN on public addresses). */
  blockedRanges?: string[];
}

export interface HostFirewallState {
  backend: FirewallBackendName;
  /** ip_forward before this call ("0" or "1"), so a test can put it back. */
  previousIpForward: string;
}

/**
 * Once per host, idempotent: the agent's rules (nftables table `inet wrenn`, or WRENN-* iptables
 * chains) and ip_forward on. Re-applying keeps which sandboxes have internet.
 */
export async function ensureHostFirewall(
  options: HostFirewallOptions = {},
): Promise<HostFirewallState> {
  const fw = await backend();
  const cidr = options.cidr ?? sandboxCidrFromEnv();
  await fw.install([...BLOCKED_RANGES, cidr, ...(options.blockedRanges ?? [])]);
  const previousIpForward = (await readFile(IP_FORWARD, "utf8")).trim();
  if (previousIpForward !== "1") await writeFile(IP_FORWARD, "1");
  return { backend: fw.name, previousIpForward };
}

/** Whether the agent's rules are in place (someone may have flushed the host's ruleset). */
export async function hostFirewallInstalled(): Promise<boolean> {
  return (await backend()).installed();
}

/**
 * Whether this agent's own rules are in place: a table replaced by an older agent's (without the
 * DNS forwarder's set) counts as missing, so the host watch puts the current one back.
 */
export async function hostFirewallCurrent(): Promise<boolean> {
  const fw = await backend();
  return fw === nftFirewall ? nftFirewall.current() : fw.installed();
}

/** Removes the agent's rules (idempotent). Leaves ip_forward alone: other software may need it. */
export async function removeHostFirewall(): Promise<void> {
  await (await backend()).uninstall();
}

/**
 * Records whether the agent's firewall is installed and what ip_forward is; the function it
 * returns puts both back. For tests and benchmarks that must leave a host as they found it.
 */
export async function keepHostFirewallState(): Promise<() => Promise<void>> {
  const installed = await (await backend()).installed();
  const ipForward = (await readFile(IP_FORWARD, "utf8")).trim();
  return async () => {
    if (!installed) await removeHostFirewall();
    if ((await readFile(IP_FORWARD, "utf8")).trim() !== ipForward) {
      await writeFile(IP_FORWARD, ipForward);
    }
  };
}

/** Host veths of the sandboxes that have internet. */
export async function listInternetMembers(): Promise<string[]> {
  return (await backend()).members();
}

/** The command that gives a sandbox internet, to run alone or batched with others. */
export async function addInternetMemberCommand(
  hostIf: string,
  sandboxAddress: string,
): Promise<CommandSpec> {
  return (await backend()).addMemberCommand(hostIf, sandboxAddress);
}

/** Idempotent. */
export async function removeInternetMember(hostIf: string): Promise<void> {
  await (await backend()).removeMember(hostIf);
}

/** Whether the host's firewall is nftables (egress rules exist only there). */
export async function usesNftables(): Promise<boolean> {
  return (await backend()) === nftFirewall;
}

/**
 * Lets a sandbox reach its DNS forwarder (or nothing, with undefined). Egress rules need
 * nftables: failed_precondition on the iptables fallback.
 */
export async function setDnsMember(hostIf: string, member: DnsMember | undefined): Promise<void> {
  const fw = await backend();
  if (fw !== nftFirewall) {
    if (!member) return;
    throw new AgentError("failed_precondition", "egress rules need nftables on the host");
  }
  await nftFirewall.setDnsMember(hostIf, member);
}
