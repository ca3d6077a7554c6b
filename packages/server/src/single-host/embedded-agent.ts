import { randomBytes } from "node:crypto";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import {
  type Agent,
  createAgent,
  type Runtime,
  type WarmPoolSetting,
  warmPoolFromEnv,
} from "@wrenn/agent";
import { HostAgentService } from "@wrenn/proto/agent";
import type { Logger } from "pino";
import { nowIso, type Store } from "../db/index.js";
import type { AgentHost } from "../service/index.js";

export interface EmbeddedAgentOptions {
  /** The agent's state directory (sandboxes, templates); reused across restarts. */
  agentDir: string;
  store: Store;
  logger: Logger;
  /**
   * The template creates get when they name none (default `base`): the pool keeps one of it,
   * and a bare `WRENN_WARM_POOL` count is for it.
   */
  defaultTemplate?: string;
  /**
   * Ready sandboxes kept per template; default `WRENN_WARM_POOL` (and
   * `WRENN_WARM_POOL_MEMORY_MB`), whose default is `auto`.
   */
  warmPool?: WarmPoolSetting;
  /** Default: the agent's NamespaceRuntime over `agentDir`. */
  runtime?: Runtime;
}

export interface EmbeddedAgent {
  agent: Agent;
  /** What the sandbox services use: Connect in memory, envd through the agent's loopback proxy. */
  host: AgentHost;
  /** Stops the agent (sandboxes keep running for the next start) and marks the host offline. */
  close(): Promise<void>;
}

/**
 * Single-host mode: the agent runs in this process. Lifecycle calls go through an in-memory
 * Connect transport; exec and file traffic goes through the agent's envd proxy: its requests to
 * envd are made in-process (the proxy's own lookup, headers and connections, without a loopback
 * HTTP hop, which cost more than the rest of a transfer), Connect calls and anything the proxy
 * must answer itself over its loopback port guarded by a per-process token, as a remote agent.
 */
export async function startEmbeddedAgent(options: EmbeddedAgentOptions): Promise<EmbeddedAgent> {
  const token = randomBytes(32).toString("hex");
  const agent = createAgent({
    config: {
      agentDir: options.agentDir,
      token,
      warmPool: options.warmPool ?? warmPoolFromEnv(process.env, options.defaultTemplate ?? "base"),
      // In this process it is the server's own host, whatever WRENN_SERVER_URL says.
      serverUrl: undefined,
      registrationToken: undefined,
    },
    logger: options.logger.child({ component: "agent" }),
    ...(options.runtime ? { runtime: options.runtime } : {}),
  });
  try {
    await agent.start();
    const listener = await agent.listen(0, "127.0.0.1");
    const client = createClient(HostAgentService, createRouterTransport(agent.routes));
    const info = await client.getHostInfo({});
    const now = nowIso();
    // A shared host (every team's), reached in-process: no credentials of its own.
    await options.store.hosts.upsert({
      id: info.hostId,
      address: listener.url,
      state: "ready",
      teamId: null,
      hostname: info.hostname,
      version: info.version,
      defaultRuntime: info.defaultRuntime,
      runtimes: info.runtimes,
      runtimeDetails: info.runtimeDetails.map((d) => ({ name: d.name, accel: d.accel })),
      capacity: {
        vcpus: info.capacity?.vcpus ?? 0,
        memory_mb: Number(info.capacity?.memoryMb ?? 0),
        disk_mb: Number(info.capacity?.diskMb ?? 0),
        max_sandboxes: info.capacity?.maxSandboxes ?? 0,
      },
      createdAt: now,
      lastSeenAt: now,
    });
    return {
      agent,
      host: {
        client,
        hostId: info.hostId,
        url: listener.url,
        headers: { authorization: `Bearer ${token}` },
        direct: (path, request) => agent.envdRequest(path, request),
      },
      async close() {
        await agent.close();
        await options.store.hosts.markSeen(info.hostId, "offline", nowIso());
      },
    };
  } catch (err) {
    await agent.close().catch(() => {});
    throw err;
  }
}
