import { CommandError, type CommandSpec, runCommand } from "../host/index.js";
import { HOST_IF_PATTERN } from "./names.js";

const TABLE = ["inet", "wrenn"];
/** Host-side veths of sandboxes allowed to reach the internet. */
const INTERNET_SET = "internet";

/**
 * The whole ruleset, applied atomically by `nft -f -`. Sandbox traffic is recognised by the host
 * side of its veth ("wv*"), which only the agent creates:
 * - prerouting (raw): no IPv6, nothing to 127/8 (defeats route_localnet), strict reverse-path so
 *   a sandbox cannot spoof another sandbox's or the host's address;
 * - input: only replies to connections the host opened (agent → envd) reach the host;
 * - forward: no sandbox → sandbox, nothing new into a sandbox, egress only from veths in
 *   @internet and never to private/special ranges;
 * - postrouting: masquerade egress of @internet veths.
 */
function rulesetText(blocked: readonly string[], internetIfs: readonly string[]): string {
  const table = TABLE.join(" ");
  const elements = internetIfs.length
    ? `elements = { ${internetIfs.map((i) => JSON.stringify(i)).join(", ")} }`
    : "";
  const sb = JSON.stringify(HOST_IF_PATTERN);
  return `table ${table} {}
delete table ${table}
table ${table} {
  set ${INTERNET_SET} { type ifname; ${elements} }
  set blocked { type ipv4_addr; flags interval; auto-merge; elements = { ${blocked.join(", ")} } }
  chain prerouting {
    type filter hook prerouting priority raw; policy accept;
    iifname ${sb} meta nfproto ipv6 drop
    iifname ${sb} ip daddr 127.0.0.0/8 drop
    iifname ${sb} fib saddr . iif oif missing drop
  }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    iifname ${sb} ct state established,related accept
    iifname ${sb} drop
  }
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    iifname ${sb} oifname ${sb} drop
    oifname ${sb} ct state established,related accept
    oifname ${sb} drop
    iifname ${sb} iifname != @${INTERNET_SET} drop
    iifname ${sb} ip daddr @blocked drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    iifname @${INTERNET_SET} oifname != ${sb} masquerade
  }
}
`;
}

function isMissing(err: unknown): boolean {
  return err instanceof CommandError && /No such file or directory/.test(err.stderr);
}

export const nftFirewall = {
  name: "nftables" as const,

  async available(): Promise<boolean> {
    return runCommand("nft", ["--version"]).then(
      () => true,
      () => false,
    );
  },

  async install(blocked: readonly string[]): Promise<void> {
    // Re-applying keeps the members so running sandboxes keep their egress.
    const members = await nftFirewall.members();
    await runCommand("nft", ["-f", "-"], { input: rulesetText(blocked, members) });
  },

  async uninstall(): Promise<void> {
    const table = TABLE.join(" ");
    await runCommand("nft", ["-f", "-"], { input: `table ${table} {}\ndelete table ${table}\n` });
  },

  async installed(): Promise<boolean> {
    try {
      await runCommand("nft", ["list", "table", ...TABLE]);
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  },

  async members(): Promise<string[]> {
    try {
      const { stdout } = await runCommand("nft", ["-j", "list", "set", ...TABLE, INTERNET_SET]);
      const parsed = JSON.parse(stdout) as { nftables: { set?: { elem?: string[] } }[] };
      return parsed.nftables.flatMap((entry) => entry.set?.elem ?? []);
    } catch (err) {
      if (isMissing(err)) return [];
      throw err;
    }
  },

  addMemberCommand(hostIf: string, _sandboxAddress: string): CommandSpec {
    return { file: "nft", args: ["add", "element", ...TABLE, INTERNET_SET, `{ "${hostIf}" }`] };
  },

  async removeMember(hostIf: string): Promise<void> {
    try {
      await runCommand("nft", ["delete", "element", ...TABLE, INTERNET_SET, `{ "${hostIf}" }`]);
    } catch (err) {
      // Not a member, or no table at all: what we wanted anyway.
      if (!isMissing(err)) throw err;
    }
  },
};
