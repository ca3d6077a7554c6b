import { runCommands } from "../host/index.js";
import type { SandboxNetwork } from "./network.js";

/** The tap a VM's virtio-net is attached to, inside the sandbox's netns. */
export const VM_TAP = "tap0";

export interface VmTapOptions {
  /** Host side of the tap inside the netns (the guest's gateway), e.g. 169.254.0.1. */
  gatewayAddress: string;
  /** The guest's own address, the same in every VM. */
  guestAddress: string;
  prefixLength: number;
}

/**
 * Adds a tap device to a sandbox's netns and NATs between the sandbox address and the guest:
 * whatever reaches the sandbox address (envd, the agent's proxy) is forwarded to the guest, and
 * the guest's traffic leaves with the sandbox address. The host side (veth, firewall, egress
 * rules) stays exactly as for a namespace sandbox, and every guest keeps one fixed address, so a
 * VM restored from a snapshot needs no renumbering. Goes away with the netns.
 */
export async function addVmTap(network: SandboxNetwork, opts: VmTapOptions): Promise<void> {
  const ns = network.netnsName;
  const nat = `table ip wrenn_vm {
  chain pre { type nat hook prerouting priority dstnat; iifname "${network.sandboxIf}" ip daddr ${network.sandboxAddress} dnat to ${opts.guestAddress}; }
  chain post { type nat hook postrouting priority srcnat; oifname "${network.sandboxIf}" ip saddr ${opts.guestAddress} snat to ${network.sandboxAddress}; }
}
`;
  await runCommands([
    { file: "ip", args: ["-n", ns, "tuntap", "add", "dev", VM_TAP, "mode", "tap"] },
    {
      file: "ip",
      args: ["-n", ns, "addr", "add", `${opts.gatewayAddress}/${opts.prefixLength}`, "dev", VM_TAP],
    },
    { file: "ip", args: ["-n", ns, "link", "set", VM_TAP, "up"] },
    { file: "ip", args: ["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"] },
    { file: "ip", args: ["netns", "exec", ns, "nft", "-f", "-"], input: nat },
  ]);
}
