import type { Logger } from "pino";
import { removeInternetMember, setDnsMember, usesNftables } from "../firewall.js";
import { nftFirewall } from "../firewall-nft.js";
import type { SandboxNetwork } from "../network.js";
import { runNftScript } from "../nft-batch.js";
import { SandboxDns, type Upstream, upstreamFromEnv } from "./dns-forwarder.js";
import { addResolved, deleteEgressTable, egressTable, egressTableText } from "./nft-egress.js";
import { type EgressRules, hasEgressRules, parseEgressRules } from "./rules.js";

/** The DNS forwarder of each sandbox with rules or internet access in this process, by veth. */
const forwarders = new Map<string, Forwarder>();

interface Forwarder {
  dns: SandboxDns;
  /** The policy its table holds now (JSON), so applying the same again costs no nft call. */
  applied?: string;
}

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
  /**
   * Also puts the sandbox's veth in the main table's @internet set, in the same transaction as
   * its rules (so nothing leaves before they are in place). nftables only: the caller checks.
   */
  joinInternet?: boolean;
  /**
   * The network was made by this process just now: none of its DNS members can be in the host's
   * set yet, so there is nothing stale to look up.
   */
  fresh?: boolean;
  /** Writes table and members again even when the same rules are in place (a flushed host). */
  force?: boolean;
}

/**
 * Puts a sandbox's egress rules and DNS in place, replacing what it had (create, pool claim,
 * adoption, live change). Neither rules nor internet access: removes its table and forwarder.
 * Addresses resolved under the old rules move to the sets the new rules put their names in.
 * Throws invalid_argument on a bad rule, failed_precondition without nftables (a sandbox
 * without rules then simply has no DNS). Internet access itself (the main table's @internet
 * set) is the caller's, or comes with `joinInternet`: without it nothing leaves whatever the
 * rules say. Everything goes in one `nft -f` transaction; rules already in place cost none.
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
  const applied = JSON.stringify(policy);
  let forwarder = forwarders.get(hostIf);
  if (forwarder && forwarder.applied === applied && !opts.force && !opts.joinInternet) return;
  const created = !forwarder;
  if (!forwarder) {
    forwarder = {
      dns: await SandboxDns.start({
        listenAddress: network.hostAddress,
        sandboxAddress: network.sandboxAddress,
        upstream: opts.upstream ?? (await upstreamFromEnv()),
        policy,
        onResolved: (entries) => addResolved(hostIf, entries),
        ...(opts.log && { log: opts.log }),
      }),
    };
    forwarders.set(hostIf, forwarder);
  }
  const { dns } = forwarder;
  const previous = dns.policy;
  dns.policy = policy;
  forwarder.applied = undefined;
  try {
    const member = { hostIf, address: network.hostAddress, port: dns.port };
    // A new forwarder on a network this process did not just make (adoption) replaces the
    // member of the forwarder before it.
    const stale =
      created && !opts.fresh
        ? (await nftFirewall.dnsMembers()).filter((m) => m.hostIf === hostIf && m.port !== dns.port)
        : [];
    const lines = [
      ...(await nftFirewall.dnsMemberLines(member, stale)),
      egressTableText(network, policy, dns.port, dns.seeds()),
      ...(opts.joinInternet ? nftFirewall.internetMemberLines(hostIf, true) : []),
    ];
    // One transaction: on failure the old table, and so the old rules, stay whole.
    await runNftScript(`${lines.join("\n")}\n`);
    forwarder.applied = applied;
  } catch (err) {
    dns.policy = previous;
    if (created) await removeEgress(hostIf).catch(() => {});
    throw err;
  }
}

/**
 * Idempotent: the sandbox's egress table, forwarder and DNS membership go, and with
 * `leaveInternet` its @internet membership too (the whole of its firewall state). One nft call
 * when this process runs its forwarder; otherwise its DNS member is looked up first.
 */
export async function removeEgress(
  hostIf: string,
  opts: { leaveInternet?: boolean } = {},
): Promise<void> {
  const forwarder = forwarders.get(hostIf);
  // Read before the close: a closed socket has no port.
  const member = forwarder && { hostIf, address: forwarder.dns.address, port: forwarder.dns.port };
  forwarder?.dns.close();
  forwarders.delete(hostIf);
  // On the iptables fallback there are no egress rules to remove (and maybe no nft at all).
  if (!(await usesNftables())) {
    if (opts.leaveInternet) await removeInternetMember(hostIf);
    return;
  }
  if (member) {
    const table = `ip ${egressTable(hostIf)}`;
    const lines = [
      `table ${table} {}`,
      `delete table ${table}`,
      ...nftFirewall.dnsMemberRemoveLines(member),
      ...(opts.leaveInternet ? nftFirewall.internetMemberLines(hostIf, false) : []),
    ];
    const done = await runNftScript(`${lines.join("\n")}\n`).then(
      () => true,
      // The main table is gone or not ours (a flushed host): one piece at a time below.
      () => false,
    );
    if (done) return;
  }
  const errors: unknown[] = [];
  if (opts.leaveInternet) await removeInternetMember(hostIf).catch((err) => errors.push(err));
  try {
    const hadTable = await deleteEgressTable(hostIf);
    if (hadTable || member) await setDnsMember(hostIf, undefined);
  } catch (err) {
    errors.push(err);
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, errors.map(String).join("; "));
}
