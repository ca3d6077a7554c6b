export type { Upstream } from "./dns-forwarder.js";
export { parseUpstream, upstreamFromEnv } from "./dns-forwarder.js";
export type { ApplyEgressOptions } from "./egress.js";
export { applyEgress, removeEgress } from "./egress.js";
export { egressTable, listEgressTables } from "./nft-egress.js";
export type { EgressPolicy, EgressRules } from "./rules.js";
export { hasEgressRules, MAX_EGRESS_RULES, nameMatches, parseEgressRules } from "./rules.js";
