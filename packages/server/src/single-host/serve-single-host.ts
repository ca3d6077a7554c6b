import type { Logger } from "pino";
import type { ServerConfig } from "../config/index.js";
import { ServerError } from "../errors.js";
import { logFormat } from "../logging/index.js";
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
  let boot: BootstrapResult | undefined;
  try {
    boot = await bootstrapSingleHost(server.services, config.dataDir, url);
    if (boot.admin && !human) console.log(["", ...credentialLines(boot, url), ""].join("\n"));
    if (!boot.admin) logger.info({ config: boot.configPath }, "client config reused");
  } catch (err) {
    logger.error(
      { err },
      "could not bootstrap the admin account; delete the data dir's config.json and users to redo it",
    );
  }
  server.ready.then(
    () => {
      logger.info({ url }, "ready: sandboxes can be created");
      // On a terminal: one banner with the dashboard, the sign-in and the API, once it all works.
      if (human) console.log(readyBanner(url, boot));
    },
    () => {
      // Never lose the only showing of the password, even when the template failed.
      if (human && boot?.admin) console.log(["", ...credentialLines(boot, url), ""].join("\n"));
    },
  );
  return server;
}

/** True for the refusal `serveSingleHost` gives on a host without root or host programs. */
export function isHostPrecondition(err: unknown): err is ServerError {
  return err instanceof ServerError && err.code === "failed_precondition";
}
