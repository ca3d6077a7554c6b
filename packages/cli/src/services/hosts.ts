import { ApiClient, WrennError } from "@wrenn/sdk";
import type { Connection } from "./connection.js";
import { ago, table } from "./format.js";

/** A host of the fleet as `GET /v1/hosts` returns it. */
export interface Host {
  id: string;
  state: "ready" | "draining" | "unreachable" | "offline";
  shared: boolean;
  team_id: string | null;
  address: string | null;
  hostname: string;
  version: string;
  runtimes: string[];
  default_runtime: string;
  capacity: { vcpus: number; memory_mb: number; disk_mb: number } | null;
  usage: { sandboxes: number; vcpus: number; memory_mb: number };
  created_at: string;
  last_seen_at: string;
}

/** `POST /v1/hosts/tokens`: a one-time registration token. */
export interface HostToken {
  token: string;
  expires_at: string;
  shared: boolean;
}

/** A delete refused while the host still has sandboxes (409). */
export class HostBusyError extends Error {
  override readonly name = "HostBusyError";
  constructor(
    message: string,
    readonly sandboxes: string[],
  ) {
    super(message);
  }
}

function client(connection: Connection): ApiClient {
  return new ApiClient({ ...connection, defaultTimeoutMs: 30_000 });
}

export function createHostToken(
  connection: Connection,
  body: { shared?: boolean; ttl_sec?: number },
): Promise<HostToken> {
  return client(connection).json<HostToken>({
    method: "POST",
    path: "/v1/hosts/tokens",
    json: body,
  });
}

export async function listHosts(connection: Connection): Promise<Host[]> {
  return (await client(connection).json<{ hosts: Host[] }>({ method: "GET", path: "/v1/hosts" }))
    .hosts;
}

export function getHost(connection: Connection, id: string): Promise<Host> {
  return client(connection).json<Host>({
    method: "GET",
    path: `/v1/hosts/${encodeURIComponent(id)}`,
  });
}

export function drainHost(connection: Connection, id: string): Promise<Host> {
  return client(connection).json<Host>({
    method: "POST",
    path: `/v1/hosts/${encodeURIComponent(id)}/drain`,
    idempotent: true,
  });
}

/** DELETE /v1/hosts/{id}; a 409 becomes HostBusyError carrying the ids of its sandboxes. */
export async function removeHost(
  connection: Connection,
  id: string,
  force: boolean,
): Promise<void> {
  // The SDK's typed errors keep code and message only: the 409 body's sandbox list is read here.
  let conflict: { message?: string; sandboxes?: unknown } | undefined;
  const api = new ApiClient({
    ...connection,
    defaultTimeoutMs: 120_000,
    fetch: async (url, init) => {
      const res = await fetch(url, init as RequestInit);
      if (res.status === 409)
        conflict = (await res
          .clone()
          .json()
          .catch(() => undefined)) as typeof conflict;
      return res;
    },
  });
  try {
    await api.json({
      method: "DELETE",
      path: `/v1/hosts/${encodeURIComponent(id)}`,
      query: { force: force || undefined },
    });
  } catch (err) {
    // 409 `conflict` (the fleet routes' code) is not one of the SDK's typed conflicts.
    if (err instanceof WrennError && err.status === 409 && Array.isArray(conflict?.sandboxes)) {
      throw new HostBusyError(err.message, conflict.sandboxes.map(String));
    }
    throw err;
  }
}

export function hostTable(hosts: Host[], now = Date.now()): string {
  return table(
    ["ID", "STATE", "HOSTNAME", "SCOPE", "SANDBOXES", "VCPUS", "MEMORY", "LAST SEEN"],
    hosts.map((h) => [
      h.id,
      h.state,
      h.hostname,
      h.shared ? "shared" : "team",
      String(h.usage.sandboxes),
      h.capacity ? `${h.usage.vcpus}/${h.capacity.vcpus}` : String(h.usage.vcpus),
      h.capacity ? `${h.usage.memory_mb}/${h.capacity.memory_mb} MiB` : `${h.usage.memory_mb} MiB`,
      ago(new Date(h.last_seen_at), now),
    ]),
  );
}

/** `wrenn host info` as key: value lines. */
export function hostDetails(h: Host, now = Date.now()): string {
  const rows: [string, string][] = [
    ["ID", h.id],
    ["State", h.state],
    ["Hostname", h.hostname],
    ["Scope", h.shared ? "shared (every team)" : `team ${h.team_id ?? "-"}`],
    ["Address", h.address ?? "-"],
    ["Version", h.version],
    ["Runtimes", `${h.runtimes.join(", ")} (default ${h.default_runtime})`],
    [
      "Capacity",
      h.capacity
        ? `${h.capacity.vcpus} vCPUs, ${h.capacity.memory_mb} MiB memory, ${h.capacity.disk_mb} MiB disk`
        : "-",
    ],
    [
      "Usage",
      `${h.usage.sandboxes} sandbox(es), ${h.usage.vcpus} vCPUs, ${h.usage.memory_mb} MiB memory`,
    ],
    ["Registered", `${h.created_at} (${ago(new Date(h.created_at), now)})`],
    ["Last seen", `${h.last_seen_at} (${ago(new Date(h.last_seen_at), now)})`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join("\n");
}

/** The command a new machine runs to join, with this server's API URL. */
export function joinCommand(apiUrl: string, token: string): string {
  return `wrenn agent start --server-url ${apiUrl} --registration-token ${token} --advertise-url http://<this-host>:5007`;
}
