import { CommandError, runCommand } from "../../host/index.js";
import type { SandboxNetwork } from "../network.js";
import { runNftScript } from "../nft-batch.js";
import type { EgressPolicy } from "./rules.js";

/** One table per sandbox with rules: made and replaced atomically, removed with one delete. */
const TABLE_PREFIX = "wrenn_egress_";
export type ResolvedSet = "allow_dns" | "deny_dns";

export function egressTable(hostIf: string): string {
  return `${TABLE_PREFIX}${hostIf}`;
}

/** An address a name resolved to, kept in the sandbox's set until its (floored) TTL runs out. */
export interface ResolvedAddress {
  set: ResolvedSet;
  address: string;
  ttlSec: number;
}

function elements(values: readonly string[]): string {
  return values.length ? ` elements = { ${values.join(", ")} }` : "";
}

/**
 * The sandbox's table: its forward chain drops (rejects, so programs fail fast) what the
 * policy does not let out, and its DNS to any server is answered by the agent's forwarder at
 * `dnsPort` on the gateway address. Replies and connections already made pass (the main table
 * still cuts everything when internet access goes off). Denied sets are checked first.
 */
export function egressTableText(
  network: SandboxNetwork,
  policy: EgressPolicy,
  dnsPort: number,
  resolved: readonly ResolvedAddress[],
): string {
  const table = `ip ${egressTable(network.hostIf)}`;
  const iif = JSON.stringify(network.hostIf);
  const seeded = (set: ResolvedSet) =>
    elements(resolved.filter((r) => r.set === set).map((r) => `${r.address} timeout ${r.ttlSec}s`));
  const allowlist = policy.allowlist
    ? ["ip daddr @allow accept", "ip daddr @allow_dns accept", ...rejectRules()]
    : [];
  return `table ${table} {}
delete table ${table}
table ${table} {
  set allow { type ipv4_addr; flags interval; auto-merge;${elements(policy.allowCidrs)} }
  set deny { type ipv4_addr; flags interval; auto-merge;${elements(policy.denyCidrs)} }
  set allow_dns { type ipv4_addr; flags timeout;${seeded("allow_dns")} }
  set deny_dns { type ipv4_addr; flags timeout;${seeded("deny_dns")} }
  chain forward {
    type filter hook forward priority filter - 5; policy accept;
    iifname != ${iif} accept
    ct state established,related accept
    ip daddr @deny goto refuse
    ip daddr @deny_dns goto refuse
    ${allowlist.join("\n    ")}
  }
  chain refuse {
    ${rejectRules().join("\n    ")}
  }
  chain dns {
    type nat hook prerouting priority dstnat; policy accept;
    iifname ${iif} udp dport 53 dnat to ${network.hostAddress}:${dnsPort}
  }
}
`;
}

function rejectRules(): string[] {
  return ["meta l4proto tcp reject with tcp reset", "reject with icmp type admin-prohibited"];
}

/** Adds (or refreshes the timeout of) resolved addresses, atomically. */
export async function addResolved(
  hostIf: string,
  entries: readonly ResolvedAddress[],
): Promise<void> {
  if (entries.length === 0) return;
  const table = `ip ${egressTable(hostIf)}`;
  // add-delete-add in one transaction: sets the new timeout whether or not it was there.
  const lines = entries.flatMap(({ set, address, ttlSec }) => [
    `add element ${table} ${set} { ${address} timeout 1s }`,
    `delete element ${table} ${set} { ${address} }`,
    `add element ${table} ${set} { ${address} timeout ${ttlSec}s }`,
  ]);
  await runNftScript(`${lines.join("\n")}\n`);
}

/** False when there was no table. */
export async function deleteEgressTable(hostIf: string): Promise<boolean> {
  try {
    await runCommand("nft", ["delete", "table", "ip", egressTable(hostIf)]);
    return true;
  } catch (err) {
    if (err instanceof CommandError && /No such file or directory/.test(err.stderr)) return false;
    throw err;
  }
}

/** Host veth names of every sandbox egress table on this host. */
export async function listEgressTables(): Promise<string[]> {
  const { stdout } = await runCommand("nft", ["list", "tables", "ip"]).catch(() => ({
    stdout: "",
  }));
  return [...stdout.matchAll(new RegExp(`^table ip ${TABLE_PREFIX}(\\S+)$`, "gm"))].map(
    (m) => m[1]!,
  );
}
