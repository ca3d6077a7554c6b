import { randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { type ConnectRouter, createClient, createRouterTransport } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  type Listener,
  listenHttp,
  type RequestHandler,
  raiseMallocThresholds,
  type UpgradeListener,
} from "@wrenn/envd";
import { HostAgentService } from "@wrenn/proto/agent";
import { type AgentConfig, loadConfig } from "../config/index.js";
import { AgentError } from "../errors.js";
import { FleetMember } from "../fleet/index.js";
import { acquireDirLock } from "../lock/index.js";
import { createLogger, type Logger } from "../logger/index.js";
import { type CidrClaim, claimSandboxCidr } from "../network/index.js";
import { EnvdProxy, refuseUpgrade, sendError } from "../proxy/index.js";
import { Reaper } from "../reaper/index.js";
import { createRuntimeSet, type Runtime, RuntimeSet } from "../runtime/index.js";
import { StateStore } from "../state/index.js";
import { handleSnapshotArchive } from "../transfer/index.js";
import { createHostAgentService } from "./service.js";

export interface CreateAgentOptions {
  /** Overrides on top of the `WRENN_*` environment. */
  config?: Partial<AgentConfig>;
  /** Default: the runtimes of `config` (WRENN_RUNTIMES) over `config.agentDir`. */
  runtime?: Runtime;
  logger?: Logger;
  /** Reaper period; 2 s by default. */
  reaperIntervalMs?: number;
}

export interface Agent {
  readonly config: AgentConfig;
  readonly runtime: Runtime;
  readonly reaper: Reaper;
  /** Registers HostAgentService (for createRouterTransport or another Connect server). */
  routes: (router: ConnectRouter) => void;
  /** Node http/http2 handler: the envd proxy under /sandboxes/<id>/envd/, Connect otherwise. */
  handler: RequestHandler;
  /** Upgrade requests (WebSockets) to a sandbox's port, through the same proxy paths. */
  upgrade: UpgradeListener;
  /**
   * For a server in this process: the request to a sandbox's envd (or port) that a proxy URL
   * (`/sandboxes/<id>/envd/...`) names, without the HTTP hop to `handler`; undefined when that
   * URL must go through `handler` (see EnvdProxy.request).
   */
  envdRequest: EnvdProxy["request"];
  /** Set in fleet mode (`config.serverUrl`) once started: registration and heartbeats. */
  readonly fleet: FleetMember | undefined;
  /**
   * Takes the state directory (one agent per directory) and the sandbox range (none may
   * overlap another agent's on this host), adopts what the directory holds, starts the reaper.
   * In fleet mode also loads the host credentials (or makes the key to register with).
   */
  start(): Promise<void>;
  /**
   * Serves `handler` on HTTP/1.1 + h2c, or HTTPS with `tlsCert`/`tlsKey` (config host/port
   * unless given). In fleet mode the first listener then registers (first start) and starts
   * the heartbeats; a refused registration rejects.
   */
  listen(port?: number, host?: string): Promise<Listener>;
  /** Stops serving and reaping (awaiting pauses under way); sandboxes keep running. */
  close(): Promise<void>;
}

const version: string = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

export function createAgent(options: CreateAgentOptions = {}): Agent {
  const config = { ...loadConfig(), ...options.config };
  const logger = options.logger ?? createLogger(config.logLevel);
  const runtime = options.runtime ?? createRuntimeSet(config, logger);
  const reaper = new Reaper({ runtime, logger, intervalMs: options.reaperIntervalMs });
  const service = createHostAgentService({ runtime, reaper, agentDir: config.agentDir, version });
  const routes = (router: ConnectRouter) => {
    router.service(HostAgentService, service);
  };
  const proxy = new EnvdProxy({
    lookup: (id) => runtime.get(id),
    onActivity: (id) => reaper.hold(id),
    logger,
  });
  const connect = connectNodeAdapter({ routes });
  // In fleet mode only the agent key from the credentials opens the door; until start() has
  // loaded it, a key nobody knows.
  let authorized = bearerCheck(config.serverUrl ? randomBytes(32).toString("hex") : config.token);
  const handler: RequestHandler = (req, res) => {
    if (!authorized(req.headers.authorization)) {
      sendError(
        res,
        new AgentError("unauthenticated", "missing or wrong agent token"),
        req.headers["content-type"],
      );
      return;
    }
    if (proxy.handle(req, res)) return;
    if (handleSnapshotArchive(req, res, runtime, logger)) return;
    connect(req, res);
  };
  const upgrade: UpgradeListener = (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    if (!authorized(req.headers.authorization)) {
      refuseUpgrade(socket, 401, {
        code: "unauthenticated",
        message: "missing or wrong agent token",
      });
      return;
    }
    if (!proxy.handleUpgrade(req, socket, head)) {
      refuseUpgrade(socket, 404, { code: "not_found", message: `no upgrade route for ${req.url}` });
    }
  };
  const servers: Listener[] = [];
  const held: { release(): Promise<void> }[] = [];
  let fleet: FleetMember | undefined;
  const self = createClient(HostAgentService, createRouterTransport(routes));

  const release = async () => {
    for (const h of held.splice(0).reverse()) await h.release().catch(() => {});
  };

  return {
    config,
    runtime,
    reaper,
    routes,
    handler,
    upgrade,
    envdRequest: (url, options) => proxy.request(url, options),
    get fleet() {
      return fleet;
    },
    async start() {
      // This process relays file transfers to and from envd.
      raiseMallocThresholds();
      try {
        // Before anything in the directory is touched: a second agent here would tear down the
        // first one's sandboxes as debris.
        held.push(await acquireDirLock(config.agentDir, "agent"));
        if (runtime.sandboxCidr) held.push(await claimCidr(runtime.sandboxCidr, config.agentDir));
        if (config.serverUrl) {
          if (config.token) logger.warn("WRENN_AGENT_TOKEN is ignored in fleet mode");
          fleet = await FleetMember.prepare({
            agentDir: config.agentDir,
            serverUrl: config.serverUrl,
            cpGraceSec: config.cpGraceSec,
            runtime,
            hostInfo: () => self.getHostInfo({}),
            logger,
            ...(config.registrationToken && { registrationToken: config.registrationToken }),
            ...(config.serverCa && { serverCa: config.serverCa }),
            ...(config.heartbeatSec && { heartbeatSec: config.heartbeatSec }),
          });
          authorized = bearerCheck(fleet.agentKey);
        }
        const dropped = runtime instanceof RuntimeSet ? await runtime.prepare() : [];
        const report = await runtime.adopt();
        logger.info(
          {
            runtimes: runtimeSummary(runtime),
            unavailable: dropped,
            adopted: report.adopted,
            cleaned: report.cleaned,
            errors: report.errors.map(String),
          },
          "agent started",
        );
      } catch (err) {
        await release();
        throw err;
      }
      reaper.start();
    },
    async listen(port = config.port, host = config.host) {
      if (!config.token && !config.serverUrl && !isLoopback(host)) {
        logger.warn(
          { host },
          "listening beyond loopback without WRENN_AGENT_TOKEN: anyone who reaches this port controls the host's sandboxes",
        );
      }
      const tls = await readTls(config);
      const server = await listenHttp(handler, {
        port,
        host,
        onUpgrade: upgrade,
        ...(tls && { tls }),
      });
      servers.push(server);
      logger.info({ url: server.url }, "agent listening");
      if (fleet && servers.length === 1) {
        const advertiseUrl = config.advertiseUrl ?? defaultAdvertiseUrl(server.url);
        try {
          await fleet.join(advertiseUrl, tls?.cert);
        } catch (err) {
          servers.splice(servers.indexOf(server), 1);
          await server.close();
          throw err;
        }
      }
      return server;
    },
    async close() {
      await fleet?.close();
      await Promise.all(servers.splice(0).map((s) => s.close()));
      await reaper.stop();
      proxy.close();
      await runtime.close();
      await release();
    },
  };
}

/** The sandbox range of this agent, claimed against every other agent on the host. */
async function claimCidr(cidr: string, agentDir: string): Promise<CidrClaim> {
  // Routes on this agent's own veths (sandboxes it will adopt) are not a conflict.
  const ownResourceIds = await new StateStore(agentDir).ids().catch(() => []);
  return claimSandboxCidr({ cidr, agentDir, ownResourceIds });
}

async function readTls(config: AgentConfig): Promise<{ cert: string; key: string } | undefined> {
  if (!config.tlsCert && !config.tlsKey) return undefined;
  if (!config.tlsCert || !config.tlsKey) {
    throw new AgentError(
      "invalid_argument",
      "set both WRENN_TLS_CERT and WRENN_TLS_KEY, or neither",
    );
  }
  const [cert, key] = await Promise.all([
    readFile(config.tlsCert, "utf8"),
    readFile(config.tlsKey, "utf8"),
  ]);
  return { cert, key };
}

/** The listen URL, with a wildcard address replaced by this host's name. */
function defaultAdvertiseUrl(listenUrl: string): string {
  const url = new URL(listenUrl);
  if (url.hostname === "0.0.0.0" || url.hostname === "[::]") url.hostname = hostname();
  return url.origin;
}

/** e.g. "namespace, microvm (tcg)": what the start-up line says this host runs. */
function runtimeSummary(runtime: Runtime): string {
  if (!(runtime instanceof RuntimeSet)) return runtime.name;
  return runtime.entries
    .map((e) => (e.accel ? `${e.runtime.name} (${e.accel})` : e.runtime.name))
    .join(", ");
}

/** Without a token every request passes (loopback, in-process); with one, only its bearer. */
function bearerCheck(token: string | undefined): (header: string | undefined) => boolean {
  if (!token) return () => true;
  const expected = Buffer.from(`Bearer ${token}`);
  return (header) => {
    const given = Buffer.from(header ?? "");
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}
