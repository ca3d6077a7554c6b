import { Sandbox, type SandboxInfo, type SandboxState } from "@wrenn/sdk";
import type { Connection } from "./connection.js";
import { ago, formatDuration, table } from "./format.js";
import { networkRows } from "./network.js";

/** The shape `--json` prints for a sandbox: the SDK's info with ISO dates. */
export function sandboxJson(info: SandboxInfo): Record<string, unknown> {
  return JSON.parse(JSON.stringify(info)) as Record<string, unknown>;
}

export function sandboxTable(infos: SandboxInfo[], now = Date.now()): string {
  return table(
    ["ID", "STATE", "TEMPLATE", "VCPUS", "MEMORY", "TIMEOUT", "CREATED", "METADATA"],
    infos.map((s) => [
      s.sandboxId,
      s.state,
      s.template,
      String(s.vcpus),
      `${s.memoryMb} MiB`,
      s.timeoutMs ? formatDuration(s.timeoutMs) : "never",
      ago(s.createdAt, now),
      Object.entries(s.metadata ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(","),
    ]),
  );
}

/** `wrenn sandbox info` as key: value lines. */
export function sandboxDetails(info: SandboxInfo, now = Date.now()): string {
  const rows: [string, string][] = [
    ["ID", info.sandboxId],
    ["State", info.state],
    ["Template", info.template],
    ["vCPUs", String(info.vcpus)],
    ["Memory", `${info.memoryMb} MiB`],
    ["Disk", `${info.diskSizeMb} MiB`],
    ["Idle timeout", info.timeoutMs ? formatDuration(info.timeoutMs) : "never"],
    ...networkRows(info),
    ["Created", `${info.createdAt.toISOString()} (${ago(info.createdAt, now)})`],
  ];
  rows.push(["Last active", ago(info.lastActiveAt, now)]);
  if (info.stoppedAt) rows.push(["Stopped", info.stoppedAt.toISOString()]);
  for (const [k, v] of Object.entries(info.metadata ?? {})) rows.push([`metadata.${k}`, v]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join("\n");
}

/** Every sandbox the key's team can see, across pages. */
export async function listAll(
  connection: Connection,
  filter: { state?: SandboxState[]; metadata?: Record<string, string> } = {},
): Promise<SandboxInfo[]> {
  const out: SandboxInfo[] = [];
  for await (const info of Sandbox.list({ ...connection, ...filter })) out.push(info);
  return out;
}

/**
 * A handle on an existing sandbox for the per-sandbox calls. A paused sandbox is resumed (what
 * exec and files want) unless `resume: false` (lifecycle calls that must not wake it).
 */
export function attach(
  id: string,
  connection: Connection,
  options: { resume?: boolean } = {},
): Promise<Sandbox> {
  return Sandbox.connect(id, { ...connection, ...options });
}
