import { closeSync, writeSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname, join } from "node:path";
import { defaults } from "./defaults.js";
import { raiseMallocThresholds } from "./heap/index.js";
import { closeInheritedFds } from "./inherited-fds.js";
import { logger } from "./logger.js";
import { createEnvd } from "./server/app.js";
import { listenHttp } from "./server/listen.js";
import { lookupUser } from "./user/index.js";
import { installWebHeaders } from "./web-headers.js";

installWebHeaders();
// Uploads and downloads churn buffers: envd keeps its freed heap for the next ones. A 256 MiB
// upload left the sandbox's processes at 80-100 MiB with or without this (glibc kept most anyway).
raiseMallocThresholds();

const port = Number(process.env.WRENN_ENVD_PORT ?? 49983);
const host = process.env.WRENN_ENVD_HOST ?? "0.0.0.0";
// The agent's per-sandbox token: read once, then gone from the environment every process envd
// starts inherits.
const accessToken = process.env.WRENN_ENVD_ACCESS_TOKEN || undefined;
delete process.env.WRENN_ENVD_ACCESS_TOKEN;
// A pipe from the agent that launched this sandbox: one byte on it once envd listens, so the
// agent need not poll /health meanwhile.
const readyFd = Number(process.env.WRENN_ENVD_READY_FD) || undefined;
delete process.env.WRENN_ENVD_READY_FD;
const inherited = closeInheritedFds(readyFd ? [readyFd] : []);
if (inherited.length > 0)
  logger.warn({ fds: inherited }, "closed descriptors envd was started with");

// No top-level await: the bundle is CommonJS, which V8's code cache can serve (see bundle.mjs).
// Standalone on a developer's host there is usually no `user`: act as whoever runs envd instead.
const userChecked = process.env.WRENN_ENVD_USER
  ? Promise.resolve()
  : lookupUser(defaults.user).then(
      () => {},
      () => {
        defaults.user = userInfo().username;
        logger.warn(
          { user: defaults.user },
          "no user `user` here: processes default to the current user",
        );
      },
    );

// A template's start command and process defaults; tests point it elsewhere.
const configDir = process.env.WRENN_ENVD_CONFIG_DIR ?? "/etc/wrenn";
// The spawn helper sits beside the bundle (dist/wrenn-spawn); WRENN_ENVD_SPAWN_HELPER=0 turns it
// off (Node's spawn then starts every process).
const spawnHelper =
  process.env.WRENN_ENVD_SPAWN_HELPER === "0" || !process.argv[1]
    ? undefined
    : join(dirname(process.argv[1]), "wrenn-spawn");
delete process.env.WRENN_ENVD_SPAWN_HELPER;
const envd = createEnvd({ accessToken, configDir, spawnHelper });
const listening = userChecked.then(async () => {
  const listener = await listenHttp(envd.handler, { port, host });
  logger.info({ port: listener.port, host, pid: process.pid }, "envd listening");
  if (readyFd) signalReady(readyFd);
  return listener;
});
listening.catch((err: unknown) => {
  logger.fatal({ err }, "envd could not listen");
  process.exit(1);
});

/** Says so on the agent's pipe and closes it: no process envd starts may hold it. */
function signalReady(fd: number): void {
  try {
    writeSync(fd, "1");
  } catch (err) {
    logger.warn({ err }, "could not signal readiness to the agent");
  }
  try {
    closeSync(fd);
  } catch {
    // not open: nothing to hold
  }
}

// envd is the sandbox's first process: on termination it ends what it started, then exits.
let stopping = false;
async function stop(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, "envd stopping");
  await Promise.allSettled([listening.then((l) => l.close()), envd.close()]);
  process.exit(0);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
// No request may crash envd: log what escaped a handler and keep serving.
process.on("uncaughtException", (err) => logger.error({ err }, "uncaught exception"));
process.on("unhandledRejection", (err) => logger.error({ err }, "unhandled rejection"));
