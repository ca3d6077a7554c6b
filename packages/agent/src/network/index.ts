export type { CommandResult, CommandSpec } from "../host/index.js";
export { CommandError, runCommand, runCommands } from "../host/index.js";
export { assertSandboxId } from "../state/index.js";
export type { Ipv4Cidr, SandboxAddresses } from "./address-pool.js";
export {
  AddressPool,
  DEFAULT_SANDBOX_CIDR,
  formatIpv4,
  parseCidr,
  parseIpv4,
  sandboxCidrFromEnv,
} from "./address-pool.js";
export type { CidrClaim, ClaimCidrOptions } from "./cidr-claim.js";
export { CIDR_CLAIMS_DIR, claimSandboxCidr } from "./cidr-claim.js";
export type { ApplyEgressOptions, EgressPolicy, EgressRules, Upstream } from "./egress/index.js";
export {
  applyEgress,
  hasEgressRules,
  MAX_EGRESS_RULES,
  parseEgressRules,
  parseUpstream,
  removeEgress,
} from "./egress/index.js";
export type { FirewallBackendName, HostFirewallOptions, HostFirewallState } from "./firewall.js";
export {
  addInternetMemberCommand,
  ensureHostFirewall,
  hostFirewallCurrent,
  hostFirewallInstalled,
  keepHostFirewallState,
  listInternetMembers,
  removeHostFirewall,
  removeInternetMember,
} from "./firewall.js";
export type { NetworkPolicy } from "./internet.js";
export { applyNetworkPolicy, setInternetAccess } from "./internet.js";
export { hostIfName, netnsName, SANDBOX_IF } from "./names.js";
export type { CreateNetworkOptions, NetworkDebris, SandboxNetwork } from "./network.js";
export {
  cleanupNetworkDebris,
  createNetwork,
  listNetworkDebris,
  openNetwork,
  removeNetwork,
} from "./network.js";
export type { VmTapOptions } from "./vm-tap.js";
export { addVmTap, VM_TAP } from "./vm-tap.js";
