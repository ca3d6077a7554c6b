import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Sandbox } from "@wrenn/sdk";
import { request } from "undici";
import { TEMPLATE, withSingleHost } from "./single-host.js";
import { type Figure, msSince, percentile, timeRuns } from "./stats.js";

const MiB = 1024 * 1024;
const CREATE_RUNS = 20;
const RUN_RUNS = 100;
const CONCURRENT = 20;
const TRANSFER_MB = Number(process.env.WRENN_BENCH_TRANSFER_MB || 256);
/** Warm sandboxes kept by the agent, as a production single host would. */
const WARM = Number(process.env.WRENN_BENCH_SDK_WARM || 2);

/**
 * The SDK's point of view: a single-host server (SQLite, embedded agent, real sandboxes) on a
 * loopback port, driven only through `@wrenn/sdk`.
 */
export async function benchSdk(): Promise<Figure[]> {
  const suite = "sdk";
  const figures: Figure[] = [];
  const warmPool = WARM > 0 ? [{ template: TEMPLATE, size: WARM }] : [];
  return withSingleHost("sdk", warmPool, async ({ conn }, dataDir) => {
    const url = conn.apiUrl;

    // Sandbox.create() → commands.run('true'), one after another; the pool refills in between.
    const firstRun: number[] = [];
    for (let i = 0; i < CREATE_RUNS + 2; i++) {
      await sleep(WARM > 0 ? 400 : 0);
      const start = process.hrtime.bigint();
      const sandbox = await Sandbox.create({ ...conn, template: TEMPLATE });
      await sandbox.commands.run("true");
      if (i >= 2) firstRun.push(msSince(start));
      await sandbox.kill();
    }
    const note = WARM > 0 ? `warm pool of ${WARM}` : "no warm pool";
    figures.push(
      {
        suite,
        name: "create → run('true') p50",
        value: percentile(firstRun, 50),
        unit: "ms",
        note,
      },
      {
        suite,
        name: "create → run('true') p99",
        value: percentile(firstRun, 99),
        unit: "ms",
        note,
      },
    );

    const sandbox = await Sandbox.create({
      ...conn,
      template: TEMPLATE,
      diskSizeMb: TRANSFER_MB + 512,
    });
    const rest = await timeRuns(RUN_RUNS, async () => {
      await sandbox.commands.run("true");
    });
    const streamed = await timeRuns(RUN_RUNS, async () => {
      await sandbox.commands.run("true", { onStdout: () => {} });
    });
    // The same POST /exec without the SDK: what the server path costs on its own.
    const raw = await timeRuns(RUN_RUNS, async () => {
      const res = await request(`${url}/v1/sandboxes/${sandbox.sandboxId}/exec`, {
        method: "POST",
        headers: { "x-api-key": conn.apiKey, "content-type": "application/json" },
        body: JSON.stringify({ cmd: "true", timeout_ms: 60_000 }),
      });
      await res.body.json();
    });
    figures.push(
      {
        suite,
        name: "run('true') p50",
        value: percentile(rest, 50),
        unit: "ms",
        note: `POST /exec; without the SDK p50 ${percentile(raw, 50).toFixed(1)} ms`,
      },
      {
        suite,
        name: "run('true') p99",
        value: percentile(rest, 99),
        unit: "ms",
        note: "POST /exec",
      },
      {
        suite,
        name: "run('true', streamed) p50",
        value: percentile(streamed, 50),
        unit: "ms",
        note: "exec stream WebSocket",
      },
    );

    // 20 creates at once (more than the pool holds: most start cold).
    const each: number[] = [];
    const wallStart = process.hrtime.bigint();
    const created = await Promise.all(
      Array.from({ length: CONCURRENT }, async () => {
        const start = process.hrtime.bigint();
        const s = await Sandbox.create({ ...conn, template: TEMPLATE });
        each.push(msSince(start));
        return s;
      }),
    );
    figures.push(
      {
        suite,
        name: `${CONCURRENT} concurrent creates, all done`,
        value: msSince(wallStart),
        unit: "ms",
      },
      {
        suite,
        name: `${CONCURRENT} concurrent creates, p50 each`,
        value: percentile(each, 50),
        unit: "ms",
      },
    );
    await Promise.all(created.map((s) => s.kill()));

    // Files: a TRANSFER_MB file up and down, next to cp of the same file on the host.
    const local = join(dataDir, "transfer.bin");
    const block = randomBytes(MiB);
    await writeFile(local, Buffer.concat(Array.from({ length: TRANSFER_MB }, () => block)));
    const cpStart = process.hrtime.bigint();
    await copyFile(local, `${local}.copy`);
    const cpMbs = TRANSFER_MB / (msSince(cpStart) / 1000);
    const upStart = process.hrtime.bigint();
    await sandbox.files.write(
      "/home/user/transfer.bin",
      createReadStream(local, { highWaterMark: MiB }),
    );
    const upMbs = TRANSFER_MB / (msSince(upStart) / 1000);
    const downStart = process.hrtime.bigint();
    const stream = await sandbox.files.read("/home/user/transfer.bin", { format: "stream" });
    let size = 0;
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>)
      size += chunk.byteLength;
    if (size !== TRANSFER_MB * MiB)
      throw new Error(`read ${size} bytes, wrote ${TRANSFER_MB * MiB}`);
    const downMbs = TRANSFER_MB / (msSince(downStart) / 1000);
    // The same download without the SDK: what the server path delivers on its own.
    const rawStart = process.hrtime.bigint();
    const rawRead = await request(
      `${url}/v1/sandboxes/${sandbox.sandboxId}/files?path=/home/user/transfer.bin`,
      { headers: { "x-api-key": conn.apiKey } },
    );
    for await (const _ of rawRead.body) {
      // drained for the timing only
    }
    const rawMbs = TRANSFER_MB / (msSince(rawStart) / 1000);
    const cpNote = `cp on the host: ${Math.round(cpMbs)} MB/s`;
    figures.push(
      { suite, name: `files.write ${TRANSFER_MB} MiB`, value: upMbs, unit: "MB/s", note: cpNote },
      {
        suite,
        name: `files.read ${TRANSFER_MB} MiB`,
        value: downMbs,
        unit: "MB/s",
        note: `${cpNote}; GET without the SDK: ${Math.round(rawMbs)} MB/s`,
      },
    );
    await sandbox.kill();
    return figures;
  });
}
