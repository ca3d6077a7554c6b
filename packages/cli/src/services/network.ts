import { Flags } from "@oclif/core";
import type { SandboxCreateOpts, SandboxInfo } from "@wrenn/sdk";

/** The egress flags `sandbox create` and `sandbox network` share. */
export const networkFlags = {
  "allow-out": Flags.string({
    description:
      "Let out only to this CIDR, IPv4 address or domain (*.example.com for subdomains); repeatable.",
    multiple: true,
  }),
  "deny-out": Flags.string({
    description:
      "Never let out to this CIDR, IPv4 address or domain; repeatable; wins over --allow-out.",
    multiple: true,
  }),
  "no-internet": Flags.boolean({ description: "Cut all egress.", default: false }),
};

interface NetworkFlagValues {
  "allow-out"?: string[] | undefined;
  "deny-out"?: string[] | undefined;
  "no-internet": boolean;
}

/** The SDK's create options for the flags given (nothing when none were). */
export function networkOptions(
  flags: NetworkFlagValues,
): Pick<SandboxCreateOpts, "allowInternetAccess" | "network"> {
  return {
    ...(flags["no-internet"] ? { allowInternetAccess: false } : {}),
    ...(flags["allow-out"]?.length || flags["deny-out"]?.length
      ? { network: { allowOut: flags["allow-out"] ?? [], denyOut: flags["deny-out"] ?? [] } }
      : {}),
  };
}

/** One line per part of a sandbox's network policy, for `sandbox info` and `sandbox network`. */
export function networkRows(info: SandboxInfo): [string, string][] {
  const { network } = info;
  return [
    ["Internet", network.allowInternetAccess ? "allowed" : "cut"],
    ...(network.allowOut.length
      ? [["Allow out", network.allowOut.join(", ")] as [string, string]]
      : []),
    ...(network.denyOut.length
      ? [["Deny out", network.denyOut.join(", ")] as [string, string]]
      : []),
  ];
}
