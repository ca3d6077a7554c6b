import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { keepHostFirewallState } from "@wrenn/agent";
import { BIN } from "./cli.js";

export interface TestServer {
  apiUrl: string;
  apiKey: string;
  dataDir: string;
  /** The `wrenn server start` process. */
  pid: number;
  /** Environment for CLI runs: this server's URL and key, a config file in the data dir. */
  env: NodeJS.ProcessEnv;
  /** What the server printed (for failure messages). */
  log(): string;
  /** Kills every sandbox, stops the server, leaves the host's firewall as found, removes the data dir. */
  close(): Promise<void>;
}

const TEMPLATE = "test-minimal";

async function killAll(apiUrl: string, apiKey: string): Promise<void> {
  const headers = { "x-api-key": apiKey };
  const res = await fetch(`${apiUrl}/v1/sandboxes?limit=1000`, { headers });
  const { sandboxes } = (await res.json()) as { sandboxes: { id: string }[] };
  for (const { id } of sandboxes)
    await fetch(`${apiUrl}/v1/sandboxes/${id}`, { method: "DELETE", headers });
}

/**
 * `wrenn server start` as a child process on a free port with the test-minimal template and a
 * temp data dir; resolves once `/health` says sandboxes can be created.
 */
export async function startTestServer(): Promise<TestServer> {
  const restoreHost = await keepHostFirewallState();
  const dataDir = await mkdtemp(join(tmpdir(), "wrenn-cli-test-"));
  const configFile = join(dataDir, "config.json");
  // The server and the CLI find the same config file; the user's ~/.wrenn is never touched.
  // No warm pool: these suites are about the CLI, and the pool's refills cost CPU that CI's two
  // cores spend better on them (the SDK suites run with the default pool).
  const baseEnv: NodeJS.ProcessEnv = {
    ...process.env,
    WRENN_CONFIG: configFile,
    WRENN_WARM_POOL: process.env.WRENN_WARM_POOL ?? "0",
  };
  delete baseEnv.WRENN_API_URL;
  delete baseEnv.WRENN_API_KEY;
  // The bin's own thread-pool size, whatever the test runner's environment says.
  delete baseEnv.UV_THREADPOOL_SIZE;
  let output = "";
  const child: ChildProcess = spawn(
    process.execPath,
    [
      BIN,
      "server",
      "start",
      "--port",
      "0",
      "--data-dir",
      dataDir,
      "--template",
      TEMPLATE,
      "--log-level",
      "warn",
    ],
    { env: baseEnv, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout?.on("data", (d: Buffer) => (output += d));
  child.stderr?.on("data", (d: Buffer) => (output += d));
  let exited = false;
  child.on("exit", () => (exited = true));

  const stop = async () => {
    if (!exited && child.pid) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await once(child, "exit").catch(() => {});
      clearTimeout(killer);
    }
  };
  const cleanUp = async () => {
    await stop();
    await restoreHost();
    // A destroyed sandbox must leave no mount or loop device behind; never rm through one.
    const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
      .split("\n")
      .filter((l) => l.includes(dataDir));
    if (mounts.length > 0) throw new Error(`mounts left under ${dataDir}:\n${mounts.join("\n")}`);
    await rm(dataDir, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + 90_000;
    let config: { api_url: string; api_key: string } | undefined;
    while (!config) {
      if (exited) throw new Error(`wrenn server start exited:\n${output}`);
      if (Date.now() > deadline) throw new Error(`no config.json from the server:\n${output}`);
      config = await readFile(configFile, "utf8").then(
        (t) => JSON.parse(t) as { api_url: string; api_key: string },
        () => undefined,
      );
      if (!config) await sleep(100);
    }
    while ((await fetch(`${config.api_url}/health`).catch(() => undefined))?.status !== 200) {
      if (exited || Date.now() > deadline) throw new Error(`server never became ready:\n${output}`);
      await sleep(100);
    }
    const env = { ...baseEnv, WRENN_API_URL: config.api_url, WRENN_API_KEY: config.api_key };
    return {
      apiUrl: config.api_url,
      apiKey: config.api_key,
      dataDir,
      pid: child.pid as number,
      env,
      log: () => output,
      async close() {
        // Stopping the server leaves sandboxes running (the next start adopts them): kill them
        // first, over plain HTTP so cleanup does not depend on the code under test.
        await killAll(config.api_url, config.api_key).catch(() => {});
        await cleanUp();
      },
    };
  } catch (err) {
    await cleanUp();
    throw err;
  }
}
