import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type Listener, listenHttp, type RequestHandler } from "@wrenn/envd";
import { HostAgentService } from "@wrenn/proto/agent";
import { type AgentConfig, loadConfig } from "../config/index.js";
import { AgentError } from "../errors.js";
import { createLogger, type Logger } from "../logger/index.js";
import { EnvdProxy, sendError } from "../proxy/index.js";
import { Reaper } from "../reaper/index.js";
import { createRuntimeSet, type Runtime, RuntimeSet } from "../runtime/index.js";
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
  /** Adopts what the state directory holds and starts the reaper. */
  start(): Promise<void>;
  /** Serves `handler` on HTTP/1.1 + h2c (config host/port unless given). */
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
  const authorized = bearerCheck(config.token);
  const handler: RequestHandler = (req, res) => {
    if (!authorized(req.headers.authorization)) {
      sendError(res, new AgentError("unauthenticated", "missing or wrong agent token"));
      return;
    }
    if (!proxy.handle(req, res)) connect(req, res);
  };
  const servers: Listener[] = [];

  return {
    config,
    runtime,
    reaper,
    routes,
    handler,
    async start() {
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
      reaper.start();
    },
    async listen(port = config.port, host = config.host) {
      if (!config.token && !isLoopback(host)) {
        logger.warn(
          { host },
          "listening beyond loopback without WRENN_AGENT_TOKEN: anyone who reaches this port controls the host's sandboxes",
        );
      }
      const server = await listenHttp(handler, { port, host });
      servers.push(server);
      logger.info({ url: server.url }, "agent listening");
      return server;
    },
    async close() {
      await Promise.all(servers.splice(0).map((s) => s.close()));
      await reaper.stop();
      proxy.close();
      await runtime.close();
    },
  };
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
