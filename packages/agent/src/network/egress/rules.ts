import { AgentError } from "../../errors.js";
import { formatIpv4, parseIpv4 } from "../address-pool.js";

/** What a caller asks for: CIDRs, addresses and domain names (`*.example.com` for subdomains). */
export interface EgressRules {
  allowOut: string[];
  denyOut: string[];
}

/**
 * The rules split by kind. A non-empty allowOut makes an allowlist (only what it names passes);
 * denyOut always wins over allowOut.
 */
export interface EgressPolicy {
  allowlist: boolean;
  allowCidrs: string[];
  denyCidrs: string[];
  allowNames: string[];
  denyNames: string[];
}

/** Per list: enough for real allowlists, small enough to keep each nft update quick. */
export const MAX_EGRESS_RULES = 256;

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** "a.b.c.d" or "a.b.c.d/n" with no host bits set → canonical CIDR; undefined if not IPv4. */
function toCidr(entry: string): string | undefined {
  const [address = "", prefix, ...rest] = entry.split("/");
  if (rest.length > 0 || !/^[\d.]+$/.test(address)) return undefined;
  const value = parseIpv4(address);
  const prefixLength = prefix === undefined ? 32 : Number(prefix);
  if (!/^\d{1,2}$/.test(prefix ?? "32") || prefixLength > 32) {
    throw new AgentError("invalid_argument", `invalid CIDR: ${entry}`);
  }
  const size = 2 ** (32 - prefixLength);
  if (value % size !== 0)
    throw new AgentError("invalid_argument", `CIDR has host bits set: ${entry}`);
  return `${formatIpv4(value)}/${prefixLength}`;
}

/** A domain rule, lower-cased without a trailing dot; `*.` only as the first label. */
function toName(entry: string): string {
  const name = entry.toLowerCase().replace(/\.$/, "");
  const bare = name.startsWith("*.") ? name.slice(2) : name;
  const labels = bare.split(".");
  if (name.length > 253 || !labels.every((l) => LABEL.test(l)) || /^[\d.]+$/.test(bare)) {
    throw new AgentError("invalid_argument", `not a CIDR, IPv4 address or domain name: ${entry}`);
  }
  return name;
}

function split(list: readonly string[], what: string): { cidrs: string[]; names: string[] } {
  if (list.length > MAX_EGRESS_RULES) {
    throw new AgentError("invalid_argument", `${what} has more than ${MAX_EGRESS_RULES} entries`);
  }
  const cidrs = new Set<string>();
  const names = new Set<string>();
  for (const raw of list) {
    const entry = raw.trim();
    if (entry.includes(":")) {
      throw new AgentError("invalid_argument", `IPv6 is not routed to sandboxes: ${entry}`);
    }
    const cidr = toCidr(entry);
    if (cidr) cidrs.add(cidr);
    else names.add(toName(entry));
  }
  return { cidrs: [...cidrs], names: [...names] };
}

/** Validates rules (invalid_argument on the first bad entry) and splits them by kind. */
export function parseEgressRules(rules: EgressRules): EgressPolicy {
  const allow = split(rules.allowOut, "allowOut");
  const deny = split(rules.denyOut, "denyOut");
  return {
    allowlist: rules.allowOut.length > 0,
    allowCidrs: allow.cidrs,
    denyCidrs: deny.cidrs,
    allowNames: allow.names,
    denyNames: deny.names,
  };
}

export function hasEgressRules(rules: EgressRules | undefined): rules is EgressRules {
  return !!rules && (rules.allowOut.length > 0 || rules.denyOut.length > 0);
}

/** Whether `name` is one of `patterns`: exact, or a subdomain for `*.example.com`. */
export function nameMatches(patterns: readonly string[], name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, "");
  return patterns.some((p) => (p.startsWith("*.") ? n.endsWith(p.slice(1)) : n === p));
}
