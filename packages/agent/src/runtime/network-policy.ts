import { AgentError } from "../errors.js";
import {
  applyNetworkPolicy,
  hasEgressRules,
  type NetworkPolicy,
  parseEgressRules,
  type SandboxNetwork,
} from "../network/index.js";
import type { SandboxRecord } from "../state/index.js";
import { type EnvdTarget, execEnvd } from "./envd-health.js";
import type { LiveBase } from "./sandbox-table.js";

/** invalid_argument on a malformed rule, before anything is made or changed. */
export function checkEgress(policy: { egress?: NetworkPolicy["egress"] }): void {
  if (policy.egress) parseEgressRules(policy.egress);
}

/** A record's policy as it is stored: no empty rule lists. */
export function recordPolicy(record: SandboxRecord, policy: NetworkPolicy): void {
  record.allowInternetAccess = policy.allowInternetAccess;
  record.egress = hasEgressRules(policy.egress) ? policy.egress : undefined;
}

/**
 * Points a microVM's resolver at its gateway, where the agent's DNS forwarder answers while it
 * has internet access (namespace sandboxes get theirs in the rootfs before they start). Written
 * through envd as the sandbox's root, so nothing of the sandbox's filesystem is ever touched by
 * host root.
 */
export async function pointDnsAtForwarder(
  envd: EnvdTarget,
  network: SandboxNetwork,
): Promise<void> {
  const line = `nameserver ${network.hostAddress}`;
  const code = await execEnvd(envd, "/bin/sh", [
    "-c",
    `rm -f /etc/resolv.conf && echo "${line}" > /etc/resolv.conf`,
  ]);
  if (code !== 0) throw new AgentError("internal", `writing /etc/resolv.conf exited ${code}`);
}

/**
 * A live change of a sandbox's internet access and egress rules (both runtimes): applied to its
 * network when it has one (otherwise at its next network setup, from the record), then recorded.
 */
export async function setLiveNetworkPolicy(
  live: LiveBase & { network?: SandboxNetwork },
  policy: NetworkPolicy,
  write: (record: SandboxRecord) => Promise<void>,
): Promise<void> {
  checkEgress(policy);
  if (live.network) await applyNetworkPolicy(live.network, policy);
  recordPolicy(live.record, policy);
  await write(live.record);
}
