export type { Ipv4Cidr, SandboxAddresses } from "./address-pool.js";
export {
  AddressPool,
  DEFAULT_SANDBOX_CIDR,
  formatIpv4,
  parseCidr,
  parseIpv4,
  sandboxCidrFromEnv,
} from "./address-pool.js";
export type { CommandResult, CommandSpec } from "./command.js";
export { assertSandboxId, CommandError, runCommand, runCommands } from "./command.js";
export type { FirewallBackendName, HostFirewallOptions, HostFirewallState } from "./firewall.js";
export { ensureHostFirewall, listInternetMembers, removeHostFirewall } from "./firewall.js";
export { hostIfName, netnsName, SANDBOX_IF } from "./names.js";
export type { CreateNetworkOptions, NetworkDebris, SandboxNetwork } from "./network.js";
export {
  cleanupNetworkDebris,
  createNetwork,
  listNetworkDebris,
  openNetwork,
  removeNetwork,
} from "./network.js";
