import { setMaxListeners } from "node:events";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { HostAgentService } from "@wrenn/proto/agent";
import type { HostCredentials } from "../auth/index.js";
import type { HostRecord, Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import type { AgentHost } from "../service/sandbox-types.js";
import { breakOffOn, hostGivenUp } from "./give-up.js";

/** One call to an agent may take this long (a first create may build its template). */
const AGENT_CALL_TIMEOUT_MS = 300_000;

interface Connection {
  /** What the connection was made from: a change of address, key or certificate remakes it. */
  made: string;
  host: AgentHost;
  /** Aborted when the server gives up on the host: every call under way on `host` fails then. */
  giveUp: AbortController;
}

/**
 * The agent behind each host id: the embedded one in this process (single-host mode), or a
 * registered agent reached over Connect at its advertised URL with the key it gave at
 * registration. Every replica builds its connections from the database, so any replica can
 * drive any host.
 */
export class HostRegistry {
  private readonly local = new Map<string, AgentHost>();
  private readonly connections = new Map<string, Connection>();

  constructor(
    private readonly store: Store,
    private readonly credentials: HostCredentials,
  ) {}

  /** A host served in this process (the embedded agent). */
  addLocal(host: AgentHost): void {
    this.local.set(host.hostId, host);
  }

  isLocal(hostId: string): boolean {
    return this.local.has(hostId);
  }

  /** The agent of `hostId`; unavailable when the host is gone from the database. */
  async get(hostId: string): Promise<AgentHost> {
    const local = this.local.get(hostId);
    if (local) return local;
    const record = await this.store.hosts.get(hostId);
    if (!record) throw new ServerError("unavailable", `host ${hostId} is no longer registered`);
    return this.connect(record);
  }

  /** A connection to a registered host, reused while its address, key and certificate hold. */
  connect(record: HostRecord): AgentHost {
    const local = this.local.get(record.id);
    if (local) return local;
    if (!record.agentKey) {
      throw new ServerError("unavailable", `host ${record.id} has no credentials on this server`);
    }
    const made = `${record.address}\n${record.agentKey}\n${record.tlsCert ?? ""}`;
    const cached = this.connections.get(record.id);
    if (cached?.made === made) return cached.host;
    const giveUp = new AbortController();
    // One listener per call under way, each dropped when its call ends: no leak to warn of.
    setMaxListeners(0, giveUp.signal);
    const host = remoteHost(
      record.id,
      record.address,
      this.credentials.unseal(record.agentKey),
      record.tlsCert,
      giveUp.signal,
    );
    this.connections.set(record.id, { made, host, giveUp });
    return host;
  }

  forget(hostId: string): void {
    this.connections.delete(hostId);
  }

  /**
   * The host is unreachable: calls under way to it fail now (host_unreachable) rather than wait
   * for an agent that may never answer (a frozen one holds them up to the call limit, or
   * forever for envd streams). A later call gets a fresh connection.
   */
  cutOff(hostId: string): void {
    const connection = this.connections.get(hostId);
    if (!connection) return;
    this.connections.delete(hostId);
    connection.giveUp.abort(hostGivenUp(hostId));
  }
}

/**
 * Connect to an agent at `url` with its bearer key (and its pinned certificate over HTTPS);
 * every call to it is broken off when `signal` fires.
 */
export function remoteHost(
  hostId: string,
  url: string,
  agentKey: string,
  tlsCert?: string | null,
  signal?: AbortSignal,
): AgentHost {
  const authorization = `Bearer ${agentKey}`;
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    defaultTimeoutMs: AGENT_CALL_TIMEOUT_MS,
    ...(tlsCert ? { nodeOptions: { ca: tlsCert } } : {}),
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", authorization);
        return next(req);
      },
      ...(signal ? [breakOffOn(signal)] : []),
    ],
  });
  return {
    client: createClient(HostAgentService, transport),
    hostId,
    url,
    headers: { authorization },
    ...(tlsCert ? { ca: tlsCert } : {}),
    ...(signal ? { signal } : {}),
  };
}
