import { type CommandSpec, runCommand } from "../host/index.js";

/** iptables spells the "wv*" wildcard with a plus. */
const SB = "wv+";
const INPUT = "WRENN-INPUT";
const FORWARD = "WRENN-FORWARD";
const INTERNET = "WRENN-INTERNET";
const NAT = "WRENN-NAT";
const PRE = "WRENN-PRE";
const IN6 = "WRENN-IN6";
const FWD6 = "WRENN-FWD6";

type Family = "iptables" | "ip6tables";

async function save(family: Family): Promise<string> {
  return (await runCommand(`${family}-save`, [])).stdout;
}

async function restore(family: Family, lines: string[]): Promise<void> {
  await runCommand(`${family}-restore`, ["--noflush"], { input: `${lines.join("\n")}\n` });
}

/** The rules of `table` in iptables-save output. */
function tableSection(saved: string, table: string): string[] {
  const lines = saved.split("\n");
  const start = lines.indexOf(`*${table}`);
  if (start < 0) return [];
  const end = lines.indexOf("COMMIT", start);
  return lines.slice(start + 1, end);
}

function hasChain(saved: string, table: string, chain: string): boolean {
  return tableSection(saved, table).some((l) => l.startsWith(`:${chain} `));
}

function hasJump(saved: string, table: string, from: string, chain: string): boolean {
  return tableSection(saved, table).includes(`-A ${from} -j ${chain}`);
}

/**
 * One `*table` block: `fresh` chains are (re)declared, which flushes them, and refilled; `kept`
 * chains are only created when missing (they hold per-sandbox rules); jumps are put first in
 * their built-in chain once.
 */
function block(
  saved: string,
  table: string,
  fresh: Record<string, string[]>,
  kept: string[],
  jumps: [from: string, chain: string][],
): string[] {
  const lines = [`*${table}`];
  for (const chain of Object.keys(fresh)) lines.push(`:${chain} - [0:0]`);
  for (const chain of kept) if (!hasChain(saved, table, chain)) lines.push(`:${chain} - [0:0]`);
  for (const [chain, rules] of Object.entries(fresh)) {
    for (const rule of rules) lines.push(`-A ${chain} ${rule}`);
  }
  for (const [from, chain] of jumps) {
    if (!hasJump(saved, table, from, chain)) lines.push(`-I ${from} 1 -j ${chain}`);
  }
  lines.push("COMMIT");
  return lines;
}

/** Deletes jumps and chains that exist, in one restore per family. */
function teardown(
  saved: string,
  table: string,
  chains: string[],
  jumps: [string, string][],
): string[] {
  const lines = [`*${table}`];
  for (const [from, chain] of jumps)
    if (hasJump(saved, table, from, chain)) lines.push(`-D ${from} -j ${chain}`);
  for (const chain of chains)
    if (hasChain(saved, table, chain)) lines.push(`-F ${chain}`, `-X ${chain}`);
  lines.push("COMMIT");
  return lines.length > 2 ? lines : [];
}

const V4_JUMPS: Record<string, [string, string][]> = {
  raw: [["PREROUTING", PRE]],
  filter: [
    ["INPUT", INPUT],
    ["FORWARD", FORWARD],
  ],
  nat: [["POSTROUTING", NAT]],
};
const V6_JUMPS: [string, string][] = [
  ["INPUT", IN6],
  ["FORWARD", FWD6],
];

/** The same policy as the nftables ruleset, for hosts without nft. */
export const iptablesFirewall = {
  name: "iptables" as const,

  async available(): Promise<boolean> {
    return runCommand("iptables-restore", ["--version"]).then(
      () => true,
      () => false,
    );
  },

  async install(blocked: readonly string[]): Promise<void> {
    const [v4, v6] = await Promise.all([save("iptables"), save("ip6tables")]);
    await restore("iptables", [
      ...block(
        v4,
        "raw",
        { [PRE]: [`-i ${SB} -d 127.0.0.0/8 -j DROP`, `-i ${SB} -m rpfilter --invert -j DROP`] },
        [],
        V4_JUMPS.raw!,
      ),
      ...block(
        v4,
        "filter",
        {
          [INPUT]: [
            `-i ${SB} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
            `-i ${SB} -j DROP`,
          ],
          [FORWARD]: [
            `-i ${SB} -o ${SB} -j DROP`,
            `-o ${SB} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
            `-o ${SB} -j DROP`,
            ...blocked.map((range) => `-i ${SB} -d ${range} -j DROP`),
            `-i ${SB} -j ${INTERNET}`,
            `-i ${SB} -j DROP`,
          ],
        },
        [INTERNET],
        V4_JUMPS.filter!,
      ),
      ...block(v4, "nat", {}, [NAT], V4_JUMPS.nat!),
    ]);
    await restore(
      "ip6tables",
      block(
        v6,
        "filter",
        { [IN6]: [`-i ${SB} -j DROP`], [FWD6]: [`-i ${SB} -j DROP`, `-o ${SB} -j DROP`] },
        [],
        V6_JUMPS,
      ),
    );
  },

  async uninstall(): Promise<void> {
    const [v4, v6] = await Promise.all([save("iptables"), save("ip6tables")]);
    const v4Lines = [
      ...teardown(v4, "raw", [PRE], V4_JUMPS.raw!),
      ...teardown(v4, "filter", [INPUT, FORWARD, INTERNET], V4_JUMPS.filter!),
      ...teardown(v4, "nat", [NAT], V4_JUMPS.nat!),
    ];
    if (v4Lines.length) await restore("iptables", v4Lines);
    const v6Lines = teardown(v6, "filter", [IN6, FWD6], V6_JUMPS);
    if (v6Lines.length) await restore("ip6tables", v6Lines);
  },

  async installed(): Promise<boolean> {
    return tableSection(await save("iptables"), "filter").some((l) => l.startsWith(`:${INPUT} `));
  },

  async members(): Promise<string[]> {
    const rules = tableSection(await save("iptables"), "filter");
    const prefix = `-A ${INTERNET} -i `;
    return rules
      .filter((l) => l.startsWith(prefix))
      .map((l) => l.slice(prefix.length).split(" ")[0]!);
  },

  /** Egress rules carry the veth name as a comment so removal needs nothing else. */
  addMemberCommand(hostIf: string, sandboxAddress: string): CommandSpec {
    const lines = [
      "*filter",
      `-A ${INTERNET} -i ${hostIf} -m comment --comment ${hostIf} -j ACCEPT`,
      "COMMIT",
      "*nat",
      `-A ${NAT} -s ${sandboxAddress}/32 ! -o ${SB} -m comment --comment ${hostIf} -j MASQUERADE`,
      "COMMIT",
    ];
    return { file: "iptables-restore", args: ["--noflush"], input: `${lines.join("\n")}\n` };
  },

  async removeMember(hostIf: string): Promise<void> {
    const saved = await save("iptables");
    const lines: string[] = [];
    for (const [table, chain] of [
      ["filter", INTERNET],
      ["nat", NAT],
    ] as const) {
      const rules = tableSection(saved, table).filter(
        (l) => l.startsWith(`-A ${chain} `) && l.includes(`--comment ${hostIf} `),
      );
      if (rules.length) lines.push(`*${table}`, ...rules.map((r) => `-D${r.slice(2)}`), "COMMIT");
    }
    if (lines.length) await restore("iptables", lines);
  },
};
