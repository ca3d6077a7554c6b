import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { envdBundlePath } from "./paths.js";

export interface SpawnedEnvd {
  pid: number;
  port: number;
  /** e.g. http://127.0.0.1:49983 */
  url: string;
  child: ChildProcess;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once envd has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnEnvdOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  /** Extra environment (WRENN_ENVD_USER, WRENN_ENVD_ACCESS_TOKEN, …). */
  env?: Record<string, string>;
  /** Where envd's log lines go besides being scanned for readiness (default: dropped). */
  onLog?: (line: string) => void;
}

/**
 * Runs the envd bundle on this host as a child process (the same program that runs inside
 * sandboxes) and resolves once it listens.
 */
export async function spawnEnvd(options: SpawnEnvdOptions = {}): Promise<SpawnedEnvd> {
  const host = options.host ?? "127.0.0.1";
  const child = spawn(process.execPath, [envdBundlePath], {
    env: {
      ...process.env,
      WRENN_ENVD_PORT: String(options.port ?? 0),
      WRENN_ENVD_HOST: host,
      ...options.env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code, signal) =>
      reject(new Error(`envd exited (${signal ?? code}) before listening`)),
    );
    child.once("error", reject);
    lines.on("line", (line) => {
      options.onLog?.(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === "envd listening" && entry.port) resolve(entry.port);
      } catch {
        // Not one of envd's JSON log lines.
      }
    });
  });
  return {
    pid: child.pid!,
    port,
    url: `http://${host}:${port}`,
    child,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
