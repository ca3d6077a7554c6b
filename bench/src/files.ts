import { createReadStream } from "node:fs";
import { copyFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Sandbox } from "@wrenn/sdk";
import type { SingleHost } from "@wrenn/server";
import { request } from "undici";
import { TEMPLATE, withSingleHost } from "./single-host.js";
import { type Figure, msSince } from "./stats.js";

const MiB = 1024 * 1024;
/** The size of the file sent each way (MiB). */
export const TRANSFER_MB = Number(process.env.WRENN_BENCH_TRANSFER_MB || 256);
/**
 * Transfers per hop and way, of which the median is reported: a sandbox's first upload pays for
 * its fresh disk and envd's cold code path, and one transfer's figure swings with the host.
 */
const HOP_TRANSFERS = 3;

/** What a hop-by-hop files measurement needs: a single host and one of its sandboxes. */
export interface FilesBenchContext {
  host: SingleHost;
  sandbox: Sandbox;
  conn: { apiUrl: string; apiKey: string };
  /** Where the local file is made. */
  dataDir: string;
}

/**
 * The same file up and down at every hop of the files path (envd alone, through the agent's
 * proxy, through the server's REST, through the SDK), next to `cp` of it on the host in the
 * same run, with the CPU each transfer cost this process (SDK, server and agent) and the
 * sandbox (envd) per MiB: CPU per byte stays meaningful on a loaded host, wall time less.
 */
export async function filesByHop(ctx: FilesBenchContext, suite: string): Promise<Figure[]> {
  const { host, sandbox, conn } = ctx;
  const figures: Figure[] = [];
  const add = (name: string, value: number, unit: string, note?: string) =>
    figures.push({ suite, name, value, unit, ...(note ? { note } : {}) });
  const info = host.embedded.agent.runtime.list().find((s) => s.id === sandbox.sandboxId);
  if (!info) throw new Error("the agent does not list the sandbox");
  const agentHost = host.embedded.host;
  const envdUrl = `http://${info.envdAddress}`;
  const proxyUrl = `${agentHost.url}/sandboxes/${sandbox.sandboxId}/envd`;

  const local = join(ctx.dataDir, "transfer.bin");
  const block = Buffer.alloc(MiB, 7);
  await writeFile(local, Buffer.concat(Array.from({ length: TRANSFER_MB }, () => block)));
  const cpStart = process.hrtime.bigint();
  await copyFile(local, `${local}.copy`);
  const cpMbs = TRANSFER_MB / (msSince(cpStart) / 1000);
  await rm(`${local}.copy`);
  add(`cp ${TRANSFER_MB} MiB`, cpMbs, "MB/s", "baseline");
  const share = (mbs: number) => `${Math.round((mbs / cpMbs) * 100)}% of cp`;

  const path = "/home/user/transfer.bin";
  const query = `path=${encodeURIComponent(path)}`;
  const hops = [
    {
      name: "envd",
      url: `${envdUrl}/files?${query}&username=user`,
      method: "POST" as const,
      headers: info.envdAccessToken ? { "x-access-token": info.envdAccessToken } : {},
    },
    {
      name: "agent proxy",
      url: `${proxyUrl}/files?${query}&username=user`,
      method: "POST" as const,
      headers: agentHost.headers ?? {},
    },
    {
      name: "server REST",
      url: `${conn.apiUrl}/v1/sandboxes/${sandbox.sandboxId}/files?${query}`,
      method: "PUT" as const,
      headers: { "x-api-key": conn.apiKey },
    },
  ];
  const sandboxCpu = async () =>
    (await host.embedded.agent.runtime.metrics(sandbox.sandboxId)).cpuUsageUsec;
  const transfer = async (name: string, fn: () => Promise<void>) => {
    const runs: TransferTime[] = [];
    for (let i = 0; i < HOP_TRANSFERS; i++) runs.push(await timeTransfer(fn, sandboxCpu));
    const t = runs.sort((a, b) => a.ms - b.ms)[Math.floor(runs.length / 2)] as TransferTime;
    const mbs = TRANSFER_MB / (t.ms / 1000);
    const perMiB = (ms: number) => (ms / TRANSFER_MB).toFixed(2);
    add(
      `${name}, p50 of ${HOP_TRANSFERS}`,
      mbs,
      "MB/s",
      `${share(mbs)}; CPU ms/MiB: here ${perMiB(t.hostCpuMs)} (kernel ${perMiB(t.hostSysMs)}), sandbox ${perMiB(t.sandboxCpuMs)}; page faults/MiB here ${Math.round(t.hostFaults / TRANSFER_MB)}`,
    );
  };
  const drain = async (body: AsyncIterable<Uint8Array>, what: string) => {
    let size = 0;
    for await (const chunk of body) size += chunk.byteLength;
    if (size !== TRANSFER_MB * MiB) throw new Error(`${what}: ${size} bytes`);
  };
  for (const hop of hops) {
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
  await rm(local);
  return figures;
}

interface TransferTime {
  ms: number;
  hostCpuMs: number;
  hostSysMs: number;
  sandboxCpuMs: number;
  /** Minor page faults of this process: each costs a trap, dear on a paravirtualised host. */
  hostFaults: number;
}

/**
 * Wall time of one transfer, the CPU it cost this process and the sandbox, and this process's
 * page faults (the sandbox's are not read).
 */
async function timeTransfer(
  fn: () => Promise<void>,
  sandboxCpuUsec: () => Promise<number>,
): Promise<TransferTime> {
  const sandboxBefore = await sandboxCpuUsec();
  const cpuBefore = process.cpuUsage();
  const faultsBefore = process.resourceUsage().minorPageFault;
  const start = process.hrtime.bigint();
  await fn();
  const ms = msSince(start);
  const cpu = process.cpuUsage(cpuBefore);
  const hostFaults = process.resourceUsage().minorPageFault - faultsBefore;
  const sandboxCpuMs = ((await sandboxCpuUsec()) - sandboxBefore) / 1000;
  return {
    ms,
    hostCpuMs: (cpu.user + cpu.system) / 1000,
    hostSysMs: cpu.system / 1000,
    sandboxCpuMs,
    hostFaults,
  };
}

/**
 * Files hop by hop on one single-host sandbox (`npm run bench -- files`): which hop of the
 * files path costs what, each figure next to `cp` in the same run.
 */
export function benchFiles(): Promise<Figure[]> {
  return withSingleHost("files", [], async ({ host, conn }, dataDir) => {
    const sandbox = await Sandbox.create({
      ...conn,
      template: TEMPLATE,
      diskSizeMb: TRANSFER_MB + 512,
    });
    try {
      return await filesByHop({ host, sandbox, conn, dataDir }, "files");
    } finally {
      await sandbox.kill();
    }
  });
}
