import { z } from "@hono/zod-openapi";

// Egress rule entries as the agent accepts them (it checks them again): IPv4 addresses, IPv4
// CIDRs without host bits, domain names, `*.` + a domain for its subdomains.

/** Per list, as on the agent. */
export const MAX_EGRESS_RULES = 256;

const OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const IPV4 = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/i;

/** Why an entry is not a valid rule, or undefined when it is. */
export function egressRuleProblem(entry: string): string | undefined {
  const [address = "", prefix, ...rest] = entry.split("/");
  if (IPV4.test(address)) {
    if (rest.length > 0 || (prefix !== undefined && !/^\d{1,2}$/.test(prefix))) return "bad CIDR";
    const bits = prefix === undefined ? 32 : Number(prefix);
    if (bits > 32) return "bad CIDR prefix";
    const value = address.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
    if (value % 2 ** (32 - bits) !== 0) return "CIDR has host bits set";
    return undefined;
  }
  if (entry.includes(":")) return "IPv6 is not routed to sandboxes";
  const bare = entry.replace(/\.$/, "").replace(/^\*\./, "");
  if (prefix !== undefined || entry.length > 253 || /^[\d.]+$/.test(bare)) {
    return "not a CIDR, IPv4 address or domain name";
  }
  if (!bare.split(".").every((l) => LABEL.test(l)))
    return "not a CIDR, IPv4 address or domain name";
  return undefined;
}

const EgressRule = z.string().superRefine((entry, ctx) => {
  const problem = egressRuleProblem(entry);
  if (problem) ctx.addIssue({ code: "custom", message: `${JSON.stringify(entry)}: ${problem}` });
});

export const EgressList = z
  .array(EgressRule)
  .max(MAX_EGRESS_RULES)
  .openapi({
    description:
      "CIDRs, IPv4 addresses and domain names (`*.example.com` for subdomains). A non-empty allow_out lets out only what it names; deny_out wins over allow_out",
    example: ["203.0.113.0/24", "api.example.com", "*.example.org"],
  });

export const SandboxNetworkSchema = z
  .object({
    allow_internet_access: z.boolean(),
    allow_out: EgressList,
    deny_out: EgressList,
  })
  .openapi("SandboxNetwork");

export const SandboxNetworkUpdateSchema = z
  .object({
    allow_internet_access: z.boolean().optional().openapi({ description: "Default true" }),
    allow_out: EgressList.optional(),
    deny_out: EgressList.optional(),
  })
  .openapi("SandboxNetworkUpdate");
