#!/usr/bin/env node
import pino from "pino";
import { loadConfig } from "./config/index.js";
import { ServerError } from "./errors.js";
import { openMigratedDb, startServer } from "./serve.js";
import { bootstrapSingleHost, startSingleHost } from "./single-host/index.js";

// `wrenn-server` (or `serve`): single-host mode, the agent embedded; `wrenn-server api`: the API
// alone (no agent: sandboxes are read-only); `wrenn-server migrate`: only the database schema.
const command = process.argv[2] ?? "serve";
const config = loadConfig();
const logger = pino({ name: "wrenn-server", level: config.logLevel });

function onSignal(close: () => Promise<void>): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      logger.info({ signal }, "shutting down");
      close().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
    });
  }
}

async function serveSingleHost(): Promise<void> {
  let server: Awaited<ReturnType<typeof startSingleHost>>;
  try {
    server = await startSingleHost(config, logger);
  } catch (err) {
    if (err instanceof ServerError && err.code === "failed_precondition") {
      console.error(`wrenn-server: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
  onSignal(() => server.close());
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
}

if (command === "migrate") {
  const db = await openMigratedDb(config, logger);
  await db.close();
} else if (command === "serve") {
  await serveSingleHost();
} else if (command === "api") {
  const server = await startServer(config, logger);
  onSignal(() => server.close());
} else {
  console.error(
    `usage: wrenn-server [serve|api|migrate]  (unknown command ${JSON.stringify(command)})`,
  );
  process.exit(2);
}
