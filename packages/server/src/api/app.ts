import type { IncomingMessage } from "node:http";
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { methodNotAllowed } from "hono/method-not-allowed";
import pino, { type Logger } from "pino";
import { HostCredentials, loadJwtSecret, TokenIssuer } from "../auth/index.js";
import type { ServerConfig } from "../config/index.js";
import { type DbHandle, Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import { createScheduler, Fleet, HostRegistry } from "../hosts/index.js";
import { type AgentHost, createServices, RateLimiter, type Services } from "../service/index.js";
import { consoleAssets, consolePages } from "./console-assets.js";
import {
  createEnvdRouter,
  createRouteAccess,
  createSandboxUpgrade,
  E2bAccessTokens,
  e2bApi,
} from "./e2b/index.js";
import type { App, AppEnv } from "./env.js";
import { errorHandler, errorResponse, notFoundHandler, validationHook } from "./error-handling.js";
import { requestIds, requestLog, wellFormedQuery } from "./middleware.js";
import { registerApiKeyRoutes } from "./routes/api-keys.js";
import { registerAuthRoutes } from "./routes/auth.js";
import { registerFileWatchRoutes } from "./routes/file-watch.js";
import { registerHostRoutes } from "./routes/hosts.js";
import { type Readiness, registerMetaRoutes } from "./routes/meta.js";
import { registerMetricsRoutes } from "./routes/metrics.js";
import { registerPortRoutes } from "./routes/ports.js";
import { registerProcessRoutes } from "./routes/processes.js";
import { registerQuotaRoutes } from "./routes/quotas.js";
import { registerSandboxIoRoutes, STREAMED_BODY_PATH } from "./routes/sandbox-io.js";
import { registerSandboxRoutes } from "./routes/sandboxes.js";
import { registerSnapshotRoutes } from "./routes/snapshots.js";
import { registerTeamRoutes } from "./routes/teams.js";
import { registerTemplateRoutes, TEMPLATE_BUILD_BODY_LIMIT } from "./routes/templates.js";
import { registerTicketRoutes } from "./routes/tickets.js";
import { createUpgradeHandler, type UpgradeHandler } from "./ws/index.js";

export interface CreateAppOptions {
  /** An open, migrated database. */
  db: DbHandle;
  config: ServerConfig;
  logger?: Logger;
  /**
   * An agent in this process (single-host mode), registered as a host under its own id; other
   * hosts are registered agents reached over the network.
   */
  localHost?: AgentHost;
  /** What `/health` reports; ready by default. */
  readiness?: Readiness;
}

export interface ServerApp {
  app: App;
  services: Services;
  /** The agent behind each host id (for the reconciler). */
  registry: HostRegistry;
  /** WebSocket routes (the exec stream): give it to the HTTP server's `upgrade` event. */
  upgrade: UpgradeHandler;
}

/** The whole HTTP API as a Hono app: serve it, or drive it in-process with `app.request()`. */
export async function createApp(options: CreateAppOptions): Promise<ServerApp> {
  const logger = options.logger ?? pino({ level: "silent" });
  const { config } = options;
  const secret = await loadJwtSecret(config.jwtSecret, config.dataDir);
  const store = new Store(options.db.db, options.db.dialect);
  const hostCredentials = new HostCredentials(secret);
  const registry = new HostRegistry(store, hostCredentials);
  if (options.localHost) registry.addLocal(options.localHost);
  const fleet = new Fleet(store, registry, createScheduler(config.scheduler), logger);
  const services = createServices({
    store,
    tokens: new TokenIssuer(secret, config.jwtTtlSec),
    hostCredentials,
    logger,
    fleet,
    fleetTimings: {
      heartbeatSec: config.heartbeatSec,
      staleSec: config.hostStaleSec,
      hostJwtTtlSec: config.hostJwtTtlSec,
    },
    sandboxDefaults: { template: config.defaultTemplate },
    signupMode: config.signup,
    teamQuotas: config.teamQuotas,
    layerCache: config.layerCache,
    createsPerTeamPerMin: config.rateLimits.createsPerTeam,
  });

  const app: App = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.onError(errorHandler(logger));
  app.notFound(notFoundHandler);
  app.use(requestIds());
  app.use(requestLog(logger));
  app.use("/v1/*", wellFormedQuery());
  // envd traffic and published ports go to their sandbox before any route sees them.
  const e2bTokens = new E2bAccessTokens(secret);
  const domain = config.domain ?? null;
  const access = createRouteAccess({ services, tokens: e2bTokens, domain, logger });
  app.use(createEnvdRouter({ access, domain, logger }));
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) => {
        c.header("Allow", methods.join(", "));
        return errorResponse(
          c,
          new ServerError(
            "method_not_allowed",
            `${c.req.method} is not allowed here; use ${methods.join(", ")}`,
          ),
        );
      },
    }),
  );
  // Every body is bounded but a file upload's (it streams through to the sandbox); a template
  // build carries the files it copies, so it is bounded higher.
  const bound = (maxBytes: number, message: string) => {
    const tooLarge = () => {
      throw new ServerError("payload_too_large", message);
    };
    return { maxBytes, tooLarge, limiter: bodyLimit({ maxSize: maxBytes, onError: tooLarge }) };
  };
  const bodyBound = bound(
    config.bodyLimitBytes,
    `request body is larger than ${config.bodyLimitBytes} bytes`,
  );
  const buildBound = bound(
    TEMPLATE_BUILD_BODY_LIMIT,
    `a template build's request (recipe and files) is larger than ${TEMPLATE_BUILD_BODY_LIMIT} bytes`,
  );
  app.use("/v1/*", (c, next) => {
    // GET and HEAD carry no body.
    if (c.req.method === "GET" || c.req.method === "HEAD" || STREAMED_BODY_PATH.test(c.req.path)) {
      return next();
    }
    const { maxBytes, tooLarge, limiter } =
      c.req.path === "/v1/templates/builds" ? buildBound : bodyBound;
    // On the wire, a body without Transfer-Encoding is exactly its Content-Length long (none
    // without one): Node's parser reads no more. So it is checked from the headers, without the
    // whole web Request hono's limiter builds to look at the body (an exec's p50 went from
    // 3.7-3.8 to 3.6 ms without it). A chunked body, or one handed in-process, is counted by the
    // limiter.
    const headers = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.headers;
    if (!headers || headers["transfer-encoding"] !== undefined) return limiter(c, next);
    return Number(headers["content-length"] ?? 0) > maxBytes ? tooLarge() : next();
  });

  registerMetaRoutes(app, options.readiness ?? (() => ({ ready: true })));
  registerAuthRoutes(app, services, {
    perIp: new RateLimiter(config.rateLimits.authPerIp),
    perAccount: new RateLimiter(config.rateLimits.authPerAccount),
  });
  registerApiKeyRoutes(app, services);
  registerTeamRoutes(app, services);
  registerSandboxRoutes(app, services, e2bTokens);
  registerSandboxIoRoutes(app, services);
  registerProcessRoutes(app, services);
  registerFileWatchRoutes(app, services);
  registerMetricsRoutes(app, services);
  registerSnapshotRoutes(app, services);
  registerTemplateRoutes(app, services);
  registerHostRoutes(app, services);
  registerQuotaRoutes(app, services);
  registerTicketRoutes(app, services);
  registerPortRoutes(app, services, domain, e2bTokens);
  app.use("/sandboxes", consolePages());
  app.use("/sandboxes/*", consolePages());
  // E2B's control-plane contract (`/sandboxes`, `/v2/sandboxes`), on the same services.
  app.route("/", e2bApi({ services, tokens: e2bTokens, domain, logger }));
  // Last: the web console answers only what no API route did.
  app.use(consoleAssets());
  const apiSockets = createUpgradeHandler(services, logger);
  const sandboxSockets = createSandboxUpgrade({ access, domain, logger });
  const upgrade: UpgradeHandler = {
    handle(req, socket, head) {
      if (!sandboxSockets.handle(req, socket, head)) apiSockets.handle(req, socket, head);
    },
    close() {
      sandboxSockets.close();
      apiSockets.close();
    },
  };
  return { app, services, registry, upgrade };
}
