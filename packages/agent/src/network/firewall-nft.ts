import { CommandError, type CommandSpec, runCommand } from "../host/index.js";
import { HOST_IF_PATTERN } from "./names.js";
import { runNftScript } from "./nft-batch.js";

const TABLE = ["inet", "wrenn"];
/** Host-side veths of sandboxes allowed to reach the internet. */
const INTERNET_SET = "internet";
/** host veth . gateway address . port of each sandbox's DNS forwarder (egress rules). */
const DNS_SET = "dns";

export interface DnsMember {
  hostIf: string;
  address: string;
  port: number;
}

const DNS_RULE = `iifname . ip daddr . udp dport @${DNS_SET} accept`;

function dnsElement(m: DnsMember): string {
  return `${JSON.stringify(m.hostIf)} . ${m.address} . ${m.port}`;
}

/**
 * The whole ruleset, applied atomically by `nft -f -`. Sandbox traffic is recognised by the host
 * side of its veth ("wv*"), which only the agent creates:
 * - prerouting (raw): no IPv6, nothing to 127/8 (defeats route_localnet), strict reverse-path so
 *   a sandbox cannot spoof another sandbox's or the host's address;
 * - input: only replies to connections the host opened (agent → envd) reach the host, and DNS
 *   to the agent's forwarder of a sandbox with egress rules (@dns);
 * - forward: no sandbox → sandbox, nothing new into a sandbox, egress only from veths in
 *   @internet and never to private/special ranges;
 * - postrouting: masquerade egress of @internet veths.
 */
function rulesetText(
  blocked: readonly string[],
  internetIfs: readonly string[],
  dns: readonly DnsMember[],
): string {
  const table = TABLE.join(" ");
  const elements = internetIfs.length
    ? `elements = { ${internetIfs.map((i) => JSON.stringify(i)).join(", ")} }`
    : "";
  const sb = JSON.stringify(HOST_IF_PATTERN);
  return `table ${table} {}
delete table ${table}
table ${table} {
  set ${INTERNET_SET} { type ifname; ${elements} }
  set ${DNS_SET} { type ifname . ipv4_addr . inet_service;${dns.length ? ` elements = { ${dns.map(dnsElement).join(", ")} }` : ""} }
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
    ${DNS_RULE}
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

/** Set once this process has seen the @dns rule in place (its own install, or a look). */
let dnsRuleSeen = false;

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
    // Re-applying keeps the members so running sandboxes keep their egress and DNS.
    const [members, dns] = await Promise.all([nftFirewall.members(), nftFirewall.dnsMembers()]);
    await runCommand("nft", ["-f", "-"], { input: rulesetText(blocked, members, dns) });
    dnsRuleSeen = true;
  },

  async uninstall(): Promise<void> {
    const table = TABLE.join(" ");
    await runCommand("nft", ["-f", "-"], { input: `table ${table} {}\ndelete table ${table}\n` });
    dnsRuleSeen = false;
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

  /** Installed, and by an agent that knows egress rules (the @dns set and its rule). */
  async current(): Promise<boolean> {
    try {
      const { stdout } = await runCommand("nft", ["list", "table", ...TABLE]);
      return stdout.includes(`@${DNS_SET}`);
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

  async dnsMembers(): Promise<DnsMember[]> {
    try {
      const { stdout } = await runCommand("nft", ["-j", "list", "set", ...TABLE, DNS_SET]);
      const parsed = JSON.parse(stdout) as {
        nftables: { set?: { elem?: { concat: [string, string, number] }[] } }[];
      };
      return parsed.nftables.flatMap((entry) =>
        (entry.set?.elem ?? []).map(({ concat: [hostIf, address, port] }) => ({
          hostIf,
          address,
          port,
        })),
      );
    } catch (err) {
      // No table, or one from before the set existed.
      if (isMissing(err)) return [];
      throw err;
    }
  },

  /**
   * Script lines (for one `nft -f` transaction with others) that let a sandbox reach its DNS
   * forwarder at `member`, and take `stale` members out. A table installed by an older agent
   * has neither the set nor its rule: they are added (looked at until this process has seen
   * the rule once; a table replaced later is put back whole by the host watch).
   */
  async dnsMemberLines(member: DnsMember, stale: readonly DnsMember[] = []): Promise<string[]> {
    const table = TABLE.join(" ");
    const lines = [`add set ${table} ${DNS_SET} { type ifname . ipv4_addr . inet_service; }`];
    if (!dnsRuleSeen) {
      const input = await runCommand("nft", ["list", "chain", ...TABLE, "input"]);
      if (input.stdout.includes(`@${DNS_SET}`)) dnsRuleSeen = true;
      else lines.push(`insert rule ${table} input ${DNS_RULE}`);
    }
    lines.push(`add element ${table} ${DNS_SET} { ${dnsElement(member)} }`);
    for (const m of stale) lines.push(...nftFirewall.dnsMemberRemoveLines(m));
    return lines;
  },

  /** Script lines that take `member` out of @dns, whether or not it is there. */
  dnsMemberRemoveLines(member: DnsMember): string[] {
    const table = TABLE.join(" ");
    // Added first so the delete cannot fail on an absent element and abort the transaction.
    return [
      `add element ${table} ${DNS_SET} { ${dnsElement(member)} }`,
      `delete element ${table} ${DNS_SET} { ${dnsElement(member)} }`,
    ];
  },

  /** Script lines that put a sandbox's veth in @internet, or take it out (whether or not it is). */
  internetMemberLines(hostIf: string, member: boolean): string[] {
    const element = `${TABLE.join(" ")} ${INTERNET_SET} { ${JSON.stringify(hostIf)} }`;
    return member
      ? [`add element ${element}`]
      : [`add element ${element}`, `delete element ${element}`];
  },

  /** Lets a sandbox reach its DNS forwarder, replacing what it had (one transaction). */
  async setDnsMember(hostIf: string, member: DnsMember | undefined): Promise<void> {
    const stale = (await nftFirewall.dnsMembers()).filter(
      (m) => m.hostIf === hostIf && (!member || dnsElement(m) !== dnsElement(member)),
    );
    const lines = member
      ? await nftFirewall.dnsMemberLines(member, stale)
      : stale.flatMap((m) => nftFirewall.dnsMemberRemoveLines(m));
    if (lines.length === 0) return;
    await runNftScript(`${lines.join("\n")}\n`).catch((err: unknown) => {
      // Only taking members out, and the table is gone meanwhile: what we wanted.
      if (member || !isMissing(err)) throw err;
    });
  },

  addMemberCommand(hostIf: string, _sandboxAddress: string): CommandSpec {
    return { file: "nft", args: ["add", "element", ...TABLE, INTERNET_SET, `{ "${hostIf}" }`] };
  },

  async removeMember(hostIf: string): Promise<void> {
    try {
      await runNftScript(`${nftFirewall.internetMemberLines(hostIf, false).join("\n")}\n`);
    } catch (err) {
      // No table at all: what we wanted anyway.
      if (!isMissing(err)) throw err;
    }
  },
};
