import type { Logger } from "pino";
import type { ServerConfig } from "../config/index.js";
import { ServerError } from "../errors.js";
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
  try {
    const boot = await bootstrapSingleHost(server.services, config.dataDir, url);
    if (boot.admin) {
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
    } else {
      logger.info({ config: boot.configPath }, "client config reused");
    }
  } catch (err) {
    logger.error(
      { err },
      "could not bootstrap the admin account; delete the data dir's config.json and users to redo it",
    );
  }
  server.ready.then(
    () => logger.info({ url }, "ready: sandboxes can be created"),
    () => {},
  );
  return server;
}

/** True for the refusal `serveSingleHost` gives on a host without root or host programs. */
export function isHostPrecondition(err: unknown): err is ServerError {
  return err instanceof ServerError && err.code === "failed_precondition";
}
