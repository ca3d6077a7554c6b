import { createHash } from "node:crypto";

/** Every host-side sandbox veth matches this (nft wildcard), and nothing else on the host should. */
export const HOST_IF_PATTERN = "wv*";
const NETNS_PREFIX = "wrenn-";
/** The sandbox side of the veth, named like this inside its netns. */
export const SANDBOX_IF = "eth0";

export function netnsName(sandboxId: string): string {
  return `${NETNS_PREFIX}${sandboxId}`;
}

/** The sandbox id of a netns name, or undefined if it is not one of ours. */
export function sandboxIdOfNetns(name: string): string | undefined {
  return name.startsWith(NETNS_PREFIX) ? name.slice(NETNS_PREFIX.length) : undefined;
}

/** `wv<8 hex of sha256(id)>h`: stable across agent restarts and within IFNAMSIZ (15). */
export function hostIfName(sandboxId: string): string {
  return `wv${createHash("sha256").update(sandboxId).digest("hex").slice(0, 8)}h`;
}

export function isHostIfName(name: string): boolean {
  return /^wv[0-9a-f]{8}h$/.test(name);
}
