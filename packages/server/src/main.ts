#!/usr/bin/env node
import { loadEnvFile } from "@wrenn/agent";
import { loadConfig } from "./config/index.js";
import { createLogger } from "./logging/index.js";
import { openMigratedDb } from "./serve.js";
import { isHostPrecondition, serveFleet, serveSingleHost } from "./single-host/index.js";

// `wrenn-server` (or `serve`): single-host mode, the agent embedded — or, with
// WRENN_EMBEDDED_AGENT=false, the control plane alone for registered agents (`api` is the same);
// `wrenn-server migrate`: only the database schema.
const command = process.argv[2] ?? "serve";
// `.env` in the working directory (or WRENN_ENV_FILE); real environment variables win.
loadEnvFile();
const config = loadConfig();
const logger = createLogger({ name: "wrenn-server", level: config.logLevel });

/**
 * Closes once on SIGINT or SIGTERM and ignores repeats while it runs: Ctrl-C under `npm start`
 * delivers SIGINT twice (the terminal signals the whole process group and scripts/start.mjs
 * forwards it), and a second once-only handler let Node's default kill the process mid-close,
 * leaving the agent's ready disks mounted.
 */
function onSignal(close: () => Promise<void>): void {
  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.info({ signal }, "already shutting down (SIGKILL or Ctrl-\\ forces an exit)");
      return;
    }
    closing = true;
    logger.info({ signal }, "shutting down");
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, shutdown);
}

async function serveSingleHostHere(): Promise<void> {
  try {
    const server = await serveSingleHost(config, logger);
    onSignal(() => server.close());
  } catch (err) {
    if (!isHostPrecondition(err)) throw err;
    console.error(`wrenn-server: ${err.message}`);
    process.exit(1);
  }
}

if (command === "migrate") {
  const db = await openMigratedDb(config, logger);
  await db.close();
} else if ((command === "serve" && !config.embeddedAgent) || command === "api") {
  const server = await serveFleet(config, logger);
  onSignal(() => server.close());
} else if (command === "serve") {
  await serveSingleHostHere();
} else {
  console.error(
    `usage: wrenn-server [serve|api|migrate]  (unknown command ${JSON.stringify(command)})`,
  );
  process.exit(2);
}
