import type { Logger } from "pino";
import type { ServerConfig } from "../config/index.js";
import { ServerError } from "../errors.js";
import { type RunningServer, startServer } from "../serve.js";
import type { Services } from "../service/index.js";
import { bootstrapSingleHost } from "./bootstrap.js";
import { type SingleHost, startSingleHost } from "./single-host.js";

/**
 * What `wrenn-server` and `wrenn server start` run: the single-host server listening, the first
 * run's admin account and client config made (the password printed once on stdout), and
 * `ready` logged. A host that cannot run sandboxes fails with `failed_precondition`.
 */
export async function serveSingleHost(config: ServerConfig, logger: Logger): Promise<SingleHost> {
  const server = await startSingleHost(config, logger);
  const url = server.http?.url ?? "";
  await announce(server.services, config, url, logger);
  server.ready.then(
    () => logger.info({ url }, "ready: sandboxes can be created"),
    () => {},
  );
  return server;
}

/**
 * The control plane alone (`WRENN_EMBEDDED_AGENT=false`): agents on other machines register
 * with tokens from `wrenn host add`. The first start on an empty database makes the admin.
 */
export async function serveFleet(config: ServerConfig, logger: Logger): Promise<RunningServer> {
  const server = await startServer(config, logger);
  await announce(server.services, config, server.url, logger);
  logger.info(
    { url: server.url },
    "ready: add hosts with `wrenn host add`, then `wrenn agent start` on each",
  );
  return server;
}

/** The first run's admin account and client config (the password printed once on stdout). */
async function announce(
  services: Services,
  config: ServerConfig,
  url: string,
  logger: Logger,
): Promise<void> {
  try {
    const boot = await bootstrapSingleHost(services, config.dataDir, url);
    if (boot.admin && boot.config) {
      console.log(
        [
          "",
          "Wrenn is set up (first run):",
          `  admin user: ${boot.admin.email}`,
          `  password:   ${boot.admin.password}   (shown once)`,
          `  API key:    ${boot.config.api_key}`,
          `  written to  ${boot.configPath} for the CLI and SDK; or export:`,
          `    export WRENN_API_URL=${url} WRENN_API_KEY=${boot.config.api_key}`,
          "",
        ].join("\n"),
      );
    } else if (boot.config) {
      logger.info({ config: boot.configPath }, "client config reused");
    } else {
      logger.info("the database already has its admin (set up by another server)");
    }
  } catch (err) {
    logger.error(
      { err },
      "could not bootstrap the admin account; delete the data dir's config.json and users to redo it",
    );
  }
}

/** True for the refusal `serveSingleHost` gives on a host without root or host programs. */
export function isHostPrecondition(err: unknown): err is ServerError {
  return err instanceof ServerError && err.code === "failed_precondition";
}
