import { runCommands } from "../host/index.js";
import { applyEgress, type EgressRules, hasEgressRules } from "./egress/index.js";
import { addInternetMemberCommand, removeInternetMember } from "./firewall.js";
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
 * What is already in place costs no call (the pool claim path of a sandbox without internet).
 */
export async function applyNetworkPolicy(
  network: SandboxNetwork,
  policy: NetworkPolicy,
  opts: { reapply?: boolean } = {},
): Promise<void> {
  const egress = applyEgress(network, policy.egress, { internet: policy.allowInternetAccess });
  // Without rules there is nothing to let out early: both at once (the pool claim's path).
  if (hasEgressRules(policy.egress)) await egress;
  const internet =
    opts.reapply || network.allowInternet !== policy.allowInternetAccess
      ? setInternetAccess(network, policy.allowInternetAccess)
      : undefined;
  await Promise.all([egress, internet]);
  network.allowInternet = policy.allowInternetAccess;
}
