import { join } from "node:path";
import { acquireDirLock, type Runtime, type WarmPoolSetting } from "@wrenn/agent";
import type { Logger } from "pino";
import { createApp, type ServerApp } from "../api/index.js";
import type { ServerConfig } from "../config/index.js";
import { type DbHandle, Store } from "../db/index.js";
import { ServerError } from "../errors.js";
import { fleetLeadership } from "../hosts/index.js";
import { type HttpListener, listenApp, openMigratedDb } from "../serve.js";
import { Reconciler } from "../service/index.js";
import { type EmbeddedAgent, startEmbeddedAgent } from "./embedded-agent.js";
import { checkPrerequisites } from "./prerequisites.js";

export interface SingleHostOptions {
  /** An open, migrated database the caller owns; default: the configured one, owned here. */
  db?: DbHandle;
  /** Default `${dataDir}/agent`. */
  agentDir?: string;
  /** Default: the agent's NamespaceRuntime. */
  runtime?: Runtime;
  /** Default: `WRENN_WARM_POOL` (default `auto`: follows the create rate and bursts). */
  warmPool?: WarmPoolSetting;
  reconcileIntervalMs?: number;
  /** Serve HTTP on `config.host:config.port` (default true; tests drive `app.request`). */
  listen?: boolean;
  /** Refuse to start on a host without bwrap, ip, … (default true). */
  checkHost?: boolean;
}

export interface SingleHost extends ServerApp {
  db: DbHandle;
  embedded: EmbeddedAgent;
  reconciler: Reconciler;
  /** Resolves when the default template is ready (sandboxes can be created). */
  ready: Promise<void>;
  /** `/health` says `preparing: [what]` until `work` settles (e.g. the first run's admin). */
  hold(what: string, work: Promise<unknown>): void;
  http: HttpListener | undefined;
  /** Stops serving, reconciling and the agent; sandboxes keep running for the next start. */
  close(): Promise<void>;
}

/**
 * The server with its agent in the same process: SQLite (or the configured PostgreSQL), an
 * embedded agent registered as the one host, the reconciler, and the default template prepared
 * in the background while `/health` says what is under way.
 */
export async function startSingleHost(
  config: ServerConfig,
  logger: Logger,
  options: SingleHostOptions = {},
): Promise<SingleHost> {
  if (options.checkHost ?? true) {
    const report = checkPrerequisites(config.defaultTemplate);
    if (!report.root)
      throw new ServerError(
        "failed_precondition",
        "single-host mode runs sandboxes with namespaces, mounts and cgroups: run it as root",
      );
    if (report.installCommand)
      throw new ServerError(
        "failed_precondition",
        `missing host programs: ${report.missing.join(", ")}; install them with: ${report.installCommand}`,
      );
  }
  // Before anything is touched: a second server on this data dir refuses here (its adoption
  // pass would tear down the first one's warm pool and disks).
  const lock = await acquireDirLock(config.dataDir, "server");
  let db: DbHandle;
  try {
    db = options.db ?? (await openMigratedDb(config, logger));
  } catch (err) {
    await lock.release();
    throw err;
  }
  const closeDb = async () => {
    if (!options.db) await db.close();
    await lock.release();
  };
  const store = new Store(db.db, db.dialect);
  let embedded: EmbeddedAgent;
  try {
    embedded = await startEmbeddedAgent({
      agentDir: options.agentDir ?? join(config.dataDir, "agent"),
      store,
      logger,
      defaultTemplate: config.defaultTemplate,
      ...(options.warmPool ? { warmPool: options.warmPool } : {}),
      ...(options.runtime ? { runtime: options.runtime } : {}),
    });
  } catch (err) {
    await closeDb();
    throw err;
  }

  const template = config.defaultTemplate;
  const step = `template ${template}`;
  const preparing = new Set([step]);
  const ready = prepareTemplate(embedded, template, logger).then(
    () => {
      preparing.delete(step);
    },
    (err: unknown) => {
      logger.error({ err, template }, "preparing the default template failed");
      preparing.delete(step);
      preparing.add(`template ${template} (failed: ${(err as Error).message})`);
      throw err;
    },
  );
  ready.catch(() => {}); // reported through /health and the log; awaiting it is optional

  const server = await createApp({
    db,
    config,
    logger,
    localHost: embedded.host,
    readiness: () => ({ ready: preparing.size === 0, preparing: [...preparing] }),
  });
  const reconciler = new Reconciler(store, server.registry, logger, {
    intervalMs: options.reconcileIntervalMs ?? config.reconcileIntervalMs,
    staleSec: config.hostStaleSec,
    leadership: fleetLeadership(config, logger),
    retentionDays: config.retentionDays,
    orphanGraceSec: config.orphanGraceSec,
  });
  // What changed while the server was down shows at once, not a tick later.
  await reconciler.tick().catch((err: unknown) => logger.warn({ err }, "first reconcile failed"));
  reconciler.start();
  const http =
    (options.listen ?? true)
      ? await listenApp(server.app, config, logger, server.upgrade)
      : undefined;

  return {
    ...server,
    db,
    embedded,
    reconciler,
    ready,
    hold(what, work) {
      preparing.add(what);
      const done = () => preparing.delete(what);
      work.then(done, done);
    },
    http,
    async close() {
      await http?.close();
      await reconciler.stop();
      await embedded.close();
      await closeDb();
    },
  };
}

/** Builds (or finds cached) the default template; the store logs its progress. */
async function prepareTemplate(
  embedded: EmbeddedAgent,
  template: string,
  logger: Logger,
): Promise<void> {
  const runtime = embedded.agent.runtime as Runtime & {
    templateStore?: {
      ensureTemplate(name: string): Promise<unknown>;
    };
  };
  if (!runtime.templateStore) return; // a runtime without local templates has nothing to prepare
  const started = performance.now();
  logger.info({ template }, "preparing the default template (cached after the first start)");
  // The template store logs each build line itself ("template build"); logging them here too
  // printed every line twice.
  await runtime.templateStore.ensureTemplate(template);
  logger.info({ template, ms: Math.round(performance.now() - started) }, "default template ready");
}
