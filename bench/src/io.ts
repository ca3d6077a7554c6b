import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { keepHostFirewallState } from "@wrenn/agent";
import { Process } from "@wrenn/proto/process";
import { Sandbox } from "@wrenn/sdk";
import { bootstrapSingleHost, loadConfig, startSingleHost } from "@wrenn/server";
import pino from "pino";
import { request } from "undici";
import { type Figure, msSince, percentile, timeRuns } from "./stats.js";

const TEMPLATE = "test-minimal";
const MiB = 1024 * 1024;
const RUNS = 100;
const TRANSFER_MB = Number(process.env.WRENN_BENCH_TRANSFER_MB || 256);

/** One hop of the exec and files path: where it starts and what it adds to the call. */
interface Hop {
  name: string;
  /** Base URL of envd's routes as this hop serves them. */
  envdUrl: string;
  headers: Record<string, string>;
}

/**
 * Exec and files hop by hop (envd alone, through the agent's proxy, through the server's REST,
 * through the SDK) on one single-host sandbox, each next to its baseline measured in the same
 * run (Node `spawn('true')`, `cp`): where a call's time goes, and which hop to fix.
 */
export async function benchIo(): Promise<Figure[]> {
  const suite = "io";
  const figures: Figure[] = [];
  const add = (name: string, value: number, unit: string, note?: string) =>
    figures.push({ suite, name, value, unit, ...(note ? { note } : {}) });
  const restoreHost = await keepHostFirewallState();
  const dataDir = await mkdtemp(join(tmpdir(), "wrenn-bench-io-"));
  const config = loadConfig({
    WRENN_DATA_DIR: dataDir,
    WRENN_DEFAULT_TEMPLATE: TEMPLATE,
    WRENN_PORT: "0",
  });
  const host = await startSingleHost(config, pino({ level: "silent" }), { warmPool: [] });
  try {
    await host.ready;
    const url = host.http?.url ?? "";
    const client = (await bootstrapSingleHost(host.services, dataDir, url)).config;
    if (!client) throw new Error("bootstrap made no client config");
    const conn = { apiUrl: url, apiKey: client.api_key };
    const sandbox = await Sandbox.create({
      ...conn,
      template: TEMPLATE,
      diskSizeMb: TRANSFER_MB + 512,
    });
    const info = host.embedded.agent.runtime.list().find((s) => s.id === sandbox.sandboxId);
    if (!info) throw new Error("the agent does not list the sandbox");
    const agentHost = host.embedded.host;
    const hops: Hop[] = [
      {
        name: "envd",
        envdUrl: `http://${info.envdAddress}`,
        headers: info.envdAccessToken ? { "x-access-token": info.envdAccessToken } : {},
      },
      {
        name: "agent proxy",
        envdUrl: `${agentHost.url}/sandboxes/${sandbox.sandboxId}/envd`,
        headers: agentHost.headers ?? {},
      },
    ];

    // Exec: `true` through `sh -c` as the SDK runs it, one after another.
    const spawnMs = await timeRuns(RUNS, () => spawnTrue());
    const base = percentile(spawnMs, 50);
    add("Node spawn('true') p50", base, "ms", "baseline");
    const ratio = (ms: number) => `${(ms / base).toFixed(2)}× spawn`;
    for (const hop of hops) {
      const processes = createClient(
        Process,
        createConnectTransport({
          baseUrl: hop.envdUrl,
          httpVersion: "1.1",
          interceptors: [
            (next) => (req) => {
              for (const [k, v] of Object.entries(hop.headers)) req.header.set(k, v);
              return next(req);
            },
          ],
        }),
      );
      const ms = await timeRuns(RUNS, async () => {
        for await (const _ of processes.start({
          process: { cmd: "/bin/sh", args: ["-c", "true"] },
        })) {
          // drained: the run ends with the stream
        }
      });
      add(`exec 'true' via ${hop.name} p50`, percentile(ms, 50), "ms", ratio(percentile(ms, 50)));
    }
    const rest = await timeRuns(RUNS, async () => {
      const res = await request(`${url}/v1/sandboxes/${sandbox.sandboxId}/exec`, {
        method: "POST",
        headers: { "x-api-key": conn.apiKey, "content-type": "application/json" },
        body: JSON.stringify({ cmd: "true" }),
      });
      await res.body.json();
    });
    add("exec 'true' via server REST p50", percentile(rest, 50), "ms", ratio(percentile(rest, 50)));
    const sdk = await timeRuns(RUNS, async () => {
      await sandbox.commands.run("true");
    });
    add("commands.run('true') via SDK p50", percentile(sdk, 50), "ms", ratio(percentile(sdk, 50)));
    add("commands.run('true') via SDK p99", percentile(sdk, 99), "ms");

    // Files: the same file up and down at every hop, next to cp of it on the host.
    const local = join(dataDir, "transfer.bin");
    const block = Buffer.alloc(MiB, 7);
    await writeFile(local, Buffer.concat(Array.from({ length: TRANSFER_MB }, () => block)));
    const cpStart = process.hrtime.bigint();
    await copyFile(local, `${local}.copy`);
    const cpMbs = TRANSFER_MB / (msSince(cpStart) / 1000);
    await rm(`${local}.copy`);
    add(`cp ${TRANSFER_MB} MiB`, cpMbs, "MB/s", "baseline");
    const share = (mbs: number) => `${Math.round((mbs / cpMbs) * 100)}% of cp`;
    const path = "/home/user/transfer.bin";
    const rawHops = [
      ...hops.map((h) => ({
        name: h.name,
        url: `${h.envdUrl}/files?path=${encodeURIComponent(path)}&username=user`,
        method: "POST" as const,
        headers: h.headers,
      })),
      {
        name: "server REST",
        url: `${url}/v1/sandboxes/${sandbox.sandboxId}/files?path=${encodeURIComponent(path)}`,
        method: "PUT" as const,
        headers: { "x-api-key": conn.apiKey },
      },
    ];
    const sandboxCpu = async () =>
      (await host.embedded.agent.runtime.metrics(sandbox.sandboxId)).cpuUsageUsec;
    const transfer = async (name: string, fn: () => Promise<void>) => {
      const t = await timeTransfer(fn, sandboxCpu);
      const mbs = TRANSFER_MB / (t.ms / 1000);
      const perMiB = (ms: number) => (ms / TRANSFER_MB).toFixed(2);
      add(
        name,
        mbs,
        "MB/s",
        `${share(mbs)}; CPU ms/MiB: here ${perMiB(t.hostCpuMs)}, sandbox ${perMiB(t.sandboxCpuMs)}`,
      );
    };
    const drain = async (body: AsyncIterable<Uint8Array>, what: string) => {
      let size = 0;
      for await (const chunk of body) size += chunk.byteLength;
      if (size !== TRANSFER_MB * MiB) throw new Error(`${what}: ${size} bytes`);
    };
    for (const hop of rawHops) {
      await transfer(`upload via ${hop.name}`, async () => {
        const res = await request(hop.url, {
          method: hop.method,
          headers: { ...hop.headers, "content-type": "application/octet-stream" },
          body: createReadStream(local, { highWaterMark: MiB }),
        });
        if (res.statusCode !== 200) throw new Error(`${hop.name} upload: ${res.statusCode}`);
        await res.body.dump();
      });
      await transfer(`download via ${hop.name}`, async () => {
        const res = await request(hop.url, { headers: hop.headers });
        await drain(res.body, `${hop.name} download`);
      });
    }
    await transfer("files.write via SDK", async () => {
      await sandbox.files.write(path, createReadStream(local, { highWaterMark: MiB }));
    });
    await transfer("files.read via SDK", async () => {
      const stream = await sandbox.files.read(path, { format: "stream" });
      await drain(stream as unknown as AsyncIterable<Uint8Array>, "files.read");
    });
    await sandbox.kill();
    return figures;
  } finally {
    const runtime = host.embedded.agent.runtime;
    for (const s of runtime.list()) await runtime.destroy(s.id).catch(() => {});
    await host.close();
    await rm(dataDir, { recursive: true, force: true });
    await restoreHost();
  }
}

function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("true", { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", () => resolve());
  });
}

/**
 * Wall time of one transfer, and the CPU it cost this process (SDK, server and agent all run
 * here) and the sandbox (envd): CPU per byte stays meaningful on a loaded host, wall time less.
 */
async function timeTransfer(
  fn: () => Promise<void>,
  sandboxCpuUsec: () => Promise<number>,
): Promise<{ ms: number; hostCpuMs: number; sandboxCpuMs: number }> {
  const sandboxBefore = await sandboxCpuUsec();
  const cpuBefore = process.cpuUsage();
  const start = process.hrtime.bigint();
  await fn();
  const ms = msSince(start);
  const cpu = process.cpuUsage(cpuBefore);
  const sandboxCpuMs = ((await sandboxCpuUsec()) - sandboxBefore) / 1000;
  return { ms, hostCpuMs: (cpu.user + cpu.system) / 1000, sandboxCpuMs };
}
