import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { serve } from "@hono/node-server";
import { acquireDirLock, raiseMallocThresholds } from "@wrenn/agent";
import pino, { type Logger } from "pino";
import { createApp, type ServerApp, type UpgradeHandler } from "./api/index.js";
import type { ServerConfig } from "./config/index.js";
import { type DbHandle, migrateToLatest, openDb, Store } from "./db/index.js";
import { fleetLeadership } from "./hosts/index.js";
import { Reconciler } from "./service/index.js";

/** Opens the configured database and brings its schema up to date. */
export async function openMigratedDb(config: ServerConfig, logger: Logger): Promise<DbHandle> {
  const handle = openDb({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    const applied = await migrateToLatest(handle.db);
    logger.info({ dialect: handle.dialect, applied }, "database ready");
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

export interface RunningServer extends ServerApp {
  /** e.g. http://127.0.0.1:3000 */
  url: string;
  db: DbHandle;
  /** The host monitor and reconciler (running while this replica holds the duty). */
  reconciler: Reconciler;
  /** Stops accepting connections, then closes the database. */
  close(): Promise<void>;
}

export interface HttpListener {
  /** e.g. http://127.0.0.1:3000 */
  url: string;
  /** The Node server (its timeouts). */
  http: Server;
  /** Stops accepting connections and waits for open ones to finish. */
  close(): Promise<void>;
}

/** Like envd's and the agent's listeners; announced to clients as `Keep-Alive: timeout=65`. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** How long `close()` lets open requests finish before cutting them. */
const CLOSE_GRACE_MS = 5_000;

/** Serves `app` on `config.host:config.port`, and its WebSockets through `upgrade`. */
export async function listenApp(
  app: ServerApp["app"],
  config: ServerConfig,
  logger: Logger,
  upgrade?: UpgradeHandler,
): Promise<HttpListener> {
  // The API relays file transfers between clients and agents.
  raiseMallocThresholds();
  // HTTP/1.1, over TLS when a certificate is configured.
  const tls =
    config.tlsCertFile && config.tlsKeyFile
      ? { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile) }
      : undefined;
  const http = await new Promise<Server>((resolve, reject) => {
    const s = serve(
      {
        fetch: app.fetch,
        port: config.port,
        hostname: config.host,
        // No limit on a whole request: uploads and streams may take longer than Node's default
        // 300 s. Headers alone must arrive within headersTimeout, which cuts slow-loris clients.
        serverOptions: {
          requestTimeout: 0,
          headersTimeout: config.headersTimeoutMs,
          // Timeouts are enforced by this periodic check (30 s by default).
          connectionsCheckingInterval: Math.min(30_000, Math.ceil(config.headersTimeoutMs / 4)),
          ...tls,
        },
        ...(tls ? { createServer: createHttpsServer } : {}),
      },
      () => resolve(s as Server),
    );
    s.once("error", reject);
  });
  // Idle keep-alive connections outlive the clients' own idle timeouts (Node's agent and undici
  // let go after 4-5 s; the agent's 30 s), so the client is the one that closes them. With Node's
  // default of 5 s the server closed them as clients sent their next request on them: ECONNRESET.
  http.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  // Requests too broken for Hono to see still get the API's error shape, not Node's bare text.
  http.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable || err.code === "ECONNRESET") {
      socket.destroy();
      return;
    }
    const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
    const body = JSON.stringify({
      code: "invalid_argument",
      message: `malformed HTTP request (${err.code ?? "unknown"})`,
    });
    socket.end(
      `HTTP/1.1 ${status} ${status === 431 ? "Request Header Fields Too Large" : "Bad Request"}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  if (upgrade) http.on("upgrade", upgrade.handle);
  const { port } = http.address() as AddressInfo;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const url = `${tls ? "https" : "http"}://${host}:${port}`;
  logger.info({ url }, "wrenn server listening");
  return {
    url,
    http,
    close: () =>
      new Promise<void>((resolve) => {
        // Requests in flight get a grace period; streams that never end (a file watch) do not
        // hold the close past it, nor do open WebSockets.
        const grace = setTimeout(() => http.closeAllConnections(), CLOSE_GRACE_MS);
        http.close(() => {
          clearTimeout(grace);
          resolve();
        });
        http.closeIdleConnections();
        upgrade?.close();
      }),
  };
}

/**
 * The control plane without an agent of its own (multi-host): migrates, serves the API on
 * `config.host:config.port`, and runs the host monitor and reconciler while this replica holds
 * the duty (one replica at a time on PostgreSQL). Hosts join with registration tokens.
 */
export async function startServer(
  config: ServerConfig,
  logger: Logger = pino({ level: config.logLevel }),
  options: { reconcileIntervalMs?: number } = {},
): Promise<RunningServer> {
  // Before anything is touched: a second server on this data dir refuses here.
  const lock = await acquireDirLock(config.dataDir, "server");
  const db = await openMigratedDb(config, logger).catch(async (err: unknown) => {
    await lock.release();
    throw err;
  });
  const server = await createApp({ db, config, logger });
  const reconciler = new Reconciler(new Store(db.db, db.dialect), server.registry, logger, {
    staleSec: config.hostStaleSec,
    leadership: fleetLeadership(config, logger),
    retentionDays: config.retentionDays,
    orphanGraceSec: config.orphanGraceSec,
    intervalMs: options.reconcileIntervalMs ?? config.reconcileIntervalMs,
  });
  reconciler.start();
  const http = await listenApp(server.app, config, logger, server.upgrade);
  return {
    ...server,
    url: http.url,
    db,
    reconciler,
    async close() {
      await http.close();
      await reconciler.stop();
      await db.close();
      await lock.release();
    },
  };
}
