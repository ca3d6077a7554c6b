import { runCommands } from "../host/index.js";
import { applyEgress, type EgressRules, hasEgressRules, removeEgress } from "./egress/index.js";
import { addInternetMemberCommand, removeInternetMember, usesNftables } from "./firewall.js";
import type { SandboxNetwork } from "./network.js";

/** What a sandbox may reach: nothing without internet access, else what its rules let out. */
export interface NetworkPolicy {
  allowInternetAccess: boolean;
  egress?: EgressRules;
}

/** Live change of the sandbox's membership in the firewall's internet set. */
export async function setInternetAccess(network: SandboxNetwork, allow: boolean): Promise<void> {
  if (allow) {
    await runCommands([await addInternetMemberCommand(network.hostIf, network.sandboxAddress)]);
  } else {
    await removeInternetMember(network.hostIf);
  }
}

/**
 * Puts a sandbox's whole network policy in place on a network that exists: pool claim, live
 * change, re-install after the host firewall was flushed (`reapply`: whatever `network` says it
 * has). The rules go first, so turning internet access on never lets out what they forbid.
 * What is already in place costs no call (a pool claim asking for what the pool made); on
 * nftables a change is one transaction.
 */
export async function applyNetworkPolicy(
  network: SandboxNetwork,
  policy: NetworkPolicy,
  opts: { reapply?: boolean } = {},
): Promise<void> {
  const internet = policy.allowInternetAccess;
  const changed = opts.reapply || network.allowInternet !== internet;
  const force = opts.reapply ?? false;
  if (changed && (await usesNftables())) {
    // Joining @internet rides in the rules' own transaction; leaving it, in their removal's.
    if (internet)
      await applyEgress(network, policy.egress, { internet, joinInternet: true, force });
    else if (hasEgressRules(policy.egress)) {
      await applyEgress(network, policy.egress, { internet, force });
      await removeInternetMember(network.hostIf);
    } else await removeEgress(network.hostIf, { leaveInternet: true });
  } else {
    const egress = applyEgress(network, policy.egress, { internet, force });
    // Without rules there is nothing to let out early: both at once.
    if (hasEgressRules(policy.egress)) await egress;
    const member = changed ? setInternetAccess(network, internet) : undefined;
    await Promise.all([egress, member]);
  }
  network.allowInternet = internet;
}
