import type { Logger } from "pino";
import { runCommand } from "../../host/index.js";
import { setDnsMember, usesNftables } from "../firewall.js";
import type { SandboxNetwork } from "../network.js";
import { SandboxDns, type Upstream, upstreamFromEnv } from "./dns-forwarder.js";
import { addResolved, deleteEgressTable, egressTableText } from "./nft-egress.js";
import { type EgressRules, hasEgressRules, parseEgressRules } from "./rules.js";

/** The DNS forwarder of each sandbox with rules or internet access in this process, by veth. */
const forwarders = new Map<string, SandboxDns>();

/** No rules: the forwarder answers every name and the table lets everything out. */
const OPEN: EgressRules = { allowOut: [], denyOut: [] };

export interface ApplyEgressOptions {
  log?: Logger;
  /** Default WRENN_DNS_UPSTREAM, else /etc/resolv.conf's first nameserver (read per sandbox). */
  upstream?: Upstream;
  /**
   * Whether the sandbox has internet access (default: what `network` says). With it and no
   * rules it still gets the forwarder, so names resolve: the sandbox's resolv.conf points at
   * its gateway and the host's resolver is not reachable from it.
   */
  internet?: boolean;
}

/**
 * Puts a sandbox's egress rules and DNS in place, replacing what it had (create, pool claim,
 * adoption, live change). Neither rules nor internet access: removes its table and forwarder.
 * Addresses resolved under the old rules move to the sets the new rules put their names in.
 * Throws invalid_argument on a bad rule, failed_precondition without nftables (a sandbox
 * without rules then simply has no DNS). Internet access itself (the main table's @internet
 * set) is the caller's: without it nothing leaves whatever the rules say.
 */
export async function applyEgress(
  network: SandboxNetwork,
  rules: EgressRules | undefined,
  opts: ApplyEgressOptions = {},
): Promise<void> {
  const { hostIf } = network;
  const withRules = hasEgressRules(rules);
  const internet = opts.internet ?? network.allowInternet;
  if (!withRules && (!internet || !(await usesNftables()))) {
    // A sandbox of this agent with rules has a forwarder (adoption starts them again).
    if (forwarders.has(hostIf)) await removeEgress(hostIf);
    return;
  }
  const policy = parseEgressRules(withRules ? rules : OPEN);
  let dns = forwarders.get(hostIf);
  const created = !dns;
  if (!dns) {
    dns = await SandboxDns.start({
      listenAddress: network.hostAddress,
      sandboxAddress: network.sandboxAddress,
      upstream: opts.upstream ?? (await upstreamFromEnv()),
      policy,
      onResolved: (entries) => addResolved(hostIf, entries),
      ...(opts.log && { log: opts.log }),
    });
    forwarders.set(hostIf, dns);
  }
  const previous = dns.policy;
  dns.policy = policy;
  try {
    // Independent, so at once (a create waits for both). The table is one transaction: on
    // failure the old table, and so the old rules, stay whole.
    await Promise.all([
      setDnsMember(hostIf, { hostIf, address: network.hostAddress, port: dns.port }),
      runCommand("nft", ["-f", "-"], {
        input: egressTableText(network, policy, dns.port, dns.seeds()),
      }),
    ]);
  } catch (err) {
    dns.policy = previous;
    if (created) await removeEgress(hostIf).catch(() => {});
    throw err;
  }
}

/**
 * Idempotent: the sandbox's egress table, forwarder and DNS membership go. One nft call for a
 * sandbox that never had a forwarder (every sandbox's removal comes through here).
 */
export async function removeEgress(hostIf: string): Promise<void> {
  const dns = forwarders.get(hostIf);
  dns?.close();
  forwarders.delete(hostIf);
  // On the iptables fallback there are no egress rules to remove (and maybe no nft at all).
  if (!dns && !(await usesNftables())) return;
  const hadTable = await deleteEgressTable(hostIf);
  if (hadTable || dns) await setDnsMember(hostIf, undefined);
}
