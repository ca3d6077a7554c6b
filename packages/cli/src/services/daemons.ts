// `wrenn server start` / `wrenn agent start`: the server and agent packages are loaded only here,
// so every other command starts without SQLite, Connect and the runtime.
import { CliError } from "../errors/index.js";

/** Flag values laid over the environment, as the server and agent read `WRENN_*` themselves. */
export function envWith(overrides: Record<string, string | number | undefined>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const [key, value] of Object.entries(overrides))
    if (value !== undefined) env[key] = String(value);
  return env;
}

/**
 * Resolves once SIGINT or SIGTERM arrives and `close` has finished. Repeats while closing are
 * ignored: Ctrl-C under a wrapper (npm start) can deliver SIGINT twice, and Node's default
 * action would kill the process mid-close, leaving disks mounted.
 */
export function untilSignal(close: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let closing = false;
    const onSignal = () => {
      if (closing) return;
      closing = true;
      close()
        .then(resolve, reject)
        .finally(() => {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
        });
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

/** The single-host server (SQLite or PostgreSQL, embedded agent) until a signal stops it. */
export async function runServer(env: NodeJS.ProcessEnv): Promise<void> {
  const { createLogger, isHostPrecondition, loadConfig, serveSingleHost } = await import(
    "@wrenn/server"
  );
  const config = loadConfig(env);
  // Human lines on a terminal, JSON otherwise (or as WRENN_LOG_FORMAT says).
  const logger = createLogger({ name: "wrenn-server", level: config.logLevel }, env);
  let server: Awaited<ReturnType<typeof serveSingleHost>>;
  try {
    server = await serveSingleHost(config, logger);
  } catch (err) {
    if (isHostPrecondition(err))
      throw new CliError(
        "host_check_failed",
        err.message,
        "Run `wrenn doctor` to see every check and its fix.",
      );
    throw err;
  }
  await untilSignal(async () => {
    logger.info("shutting down (sandboxes keep running for the next start)");
    await server.close();
  });
}

/** `.env` of the working directory (or WRENN_ENV_FILE) under the real environment. */
export async function loadDotEnv(): Promise<void> {
  const { loadEnvFile } = await import("@wrenn/agent");
  try {
    loadEnvFile();
  } catch (err) {
    throw new CliError(
      "invalid_argument",
      (err as Error).message,
      "Fix WRENN_ENV_FILE or unset it.",
    );
  }
}

/**
 * A host agent, serving HostAgentService and the envd proxy (and, with WRENN_SERVER_URL, a
 * member of that server's fleet), until a signal stops it.
 */
export async function runAgent(
  env: NodeJS.ProcessEnv,
  onListening: (url: string, hostId: string | undefined) => void,
): Promise<void> {
  const { AgentError, createAgent, loadConfig } = await import("@wrenn/agent");
  let agent: ReturnType<typeof createAgent> | undefined;
  try {
    agent = createAgent({ config: loadConfig(env) });
    await agent.start();
    onListening((await agent.listen()).url, agent.fleet?.hostId);
  } catch (err) {
    await agent?.close().catch(() => {});
    // Refused starts (registration, lock, range, config) are one line, not a stack.
    if (err instanceof AgentError || (err instanceof Error && /^WRENN_/.test(err.message)))
      throw new CliError(
        "agent_start_failed",
        err.message.charAt(0).toUpperCase() + err.message.slice(1),
      );
    throw err;
  }
  const started = agent;
  // Sandboxes keep running: the next start re-adopts them.
  await untilSignal(() => started.close());
}
