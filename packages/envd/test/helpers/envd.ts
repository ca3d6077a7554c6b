import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Filesystem } from "@wrenn/proto/filesystem";
import { Process } from "@wrenn/proto/process";
import { type SpawnedEnvd, spawnEnvd } from "../../src/spawn.js";
import { TEST_USER } from "../global-setup.js";

export { TEST_USER };

export interface RunningEnvd extends SpawnedEnvd {
  baseUrl: string;
  /** A fresh temporary directory tree, removed by stop(). */
  dir: string;
  transport(httpVersion?: "1.1" | "2"): Transport;
  process: Client<typeof Process>;
  filesystem: Client<typeof Filesystem>;
  /** envd's resident memory now (VmRSS) and at its peak (VmHWM), in bytes. */
  memory(): Promise<{ rss: number; peak: number }>;
}

/** Starts the real envd bundle (dist/bundle/envd.js) on a free port, acting as TEST_USER by default. */
export async function startEnvd(env: Record<string, string> = {}): Promise<RunningEnvd> {
  const dir = await mkdtemp(join(tmpdir(), "wrenn-envd-"));
  const envd = await spawnEnvd({ env: { WRENN_ENVD_USER: TEST_USER, ...env } });
  const transport = (httpVersion: "1.1" | "2" = "1.1") =>
    createConnectTransport({ baseUrl: envd.url, httpVersion });
  return {
    ...envd,
    baseUrl: envd.url,
    dir,
    transport,
    process: createClient(Process, transport()),
    filesystem: createClient(Filesystem, transport()),
    async memory() {
      const status = await readFile(`/proc/${envd.pid}/status`, "utf8");
      const kb = (field: string) =>
        Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
      return { rss: kb("VmRSS"), peak: kb("VmHWM") };
    },
    async stop(graceMs?: number) {
      await envd.stop(graceMs);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `Authorization` header E2B's clients send to act as `user`. */
export function basicAuth(user: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:`).toString("base64")}` };
}
