#!/usr/bin/env node
import pino from "pino";
import { loadConfig } from "./config/index.js";
import { openMigratedDb, startServer } from "./serve.js";

// `wrenn-server` serves the API; `wrenn-server migrate` only brings the database schema up to date.
const command = process.argv[2] ?? "serve";
const config = loadConfig();
const logger = pino({ name: "wrenn-server", level: config.logLevel });

if (command === "migrate") {
  const db = await openMigratedDb(config, logger);
  await db.close();
} else if (command === "serve") {
  const server = await startServer(config, logger);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      logger.info({ signal }, "shutting down");
      server.close().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
    });
  }
} else {
  console.error(
    `usage: wrenn-server [serve|migrate]  (unknown command ${JSON.stringify(command)})`,
  );
  process.exit(2);
}
