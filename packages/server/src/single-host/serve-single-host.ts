import type { Logger } from "pino";
import type { ServerConfig } from "../config/index.js";
import { ServerError } from "../errors.js";
import { logFormat } from "../logging/index.js";
import { type RunningServer, startServer } from "../serve.js";
import type { Services } from "../service/index.js";
import { credentialLines, readyBanner } from "./banner.js";
import { type BootstrapResult, bootstrapSingleHost } from "./bootstrap.js";
import { type SingleHost, startSingleHost } from "./single-host.js";

/**
 * What `wrenn-server` and `wrenn server start` run: the single-host server listening, the first
 * run's admin account and client config made (the password printed once on stdout), and
 * `ready` logged. A host that cannot run sandboxes fails with `failed_precondition`.
 */
export async function serveSingleHost(config: ServerConfig, logger: Logger): Promise<SingleHost> {
  const server = await startSingleHost(config, logger);
  const url = server.http?.url ?? "";
  const human = logFormat() === "human";
  // Ready only once the client config is written: a script that waits for /health reads it next.
  const announced = announce(server.services, config, url, logger, human);
  server.hold("admin account", announced);
  const boot = await announced;
  server.ready.then(
    () => {
      logger.info({ url }, "ready: sandboxes can be created");
      // On a terminal: one banner with the dashboard, the sign-in and the API, once it all works.
      if (human) console.log(readyBanner(url, boot));
    },
    () => {
      // Never lose the only showing of the password, even when the template failed.
      if (human && boot) console.log(["", ...credentialLines(boot, url), ""].join("\n"));
    },
  );
  return server;
}

/**
 * The control plane alone (`WRENN_EMBEDDED_AGENT=false`): agents on other machines register
 * with tokens from `wrenn host add`. The first start on an empty database makes the admin.
 */
export async function serveFleet(config: ServerConfig, logger: Logger): Promise<RunningServer> {
  const server = await startServer(config, logger);
  const human = logFormat() === "human";
  const boot = await announce(server.services, config, server.url, logger, human);
  if (human) console.log(readyBanner(server.url, boot));
  logger.info(
    { url: server.url },
    "ready: add hosts with `wrenn host add`, then `wrenn agent start` on each",
  );
  return server;
}

/**
 * The first run's admin account and client config. The password is printed once on stdout: here
 * for JSON logs, in the ready banner for a person at a terminal (`human`).
 */
async function announce(
  services: Services,
  config: ServerConfig,
  url: string,
  logger: Logger,
  human: boolean,
): Promise<BootstrapResult | undefined> {
  try {
    const boot = await bootstrapSingleHost(services, config.dataDir, url);
    if (boot.admin && boot.config) {
      if (!human) console.log(["", ...credentialLines(boot, url), ""].join("\n"));
    } else if (boot.config) {
      logger.info({ config: boot.configPath }, "client config reused");
    } else {
      logger.info("the database already has its admin (set up by another server)");
    }
    return boot;
  } catch (err) {
    logger.error(
      { err },
      "could not bootstrap the admin account; delete the data dir's config.json and users to redo it",
    );
    return undefined;
  }
}

/** True for the refusal `serveSingleHost` gives on a host without root or host programs. */
export function isHostPrecondition(err: unknown): err is ServerError {
  return err instanceof ServerError && err.code === "failed_precondition";
}
