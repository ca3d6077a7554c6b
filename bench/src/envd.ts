import { execFileSync } from "node:child_process";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawnEnvd } from "@wrenn/envd";
import { Process } from "@wrenn/proto/process";
import { type Figure, msSince, percentile, timeRuns } from "./stats.js";

const MiB = 1024 * 1024;
const transferMiB = 256;

/** Proportional set size and resident set size of a process, from smaps_rollup. */
async function memoryOf(pid: number): Promise<{ rss: number; pss: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0) * 1024;
  return { rss: kb("Rss"), pss: kb("Pss") };
}

/** A multipart/form-data body with one `file` part, streamed from disk. */
function multipartFrom(path: string, name: string): { body: Readable; contentType: string } {
  const boundary = `wrenn-bench-${Date.now()}`;
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  async function* parts() {
    yield Buffer.from(head);
    yield* createReadStream(path, { highWaterMark: MiB });
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  return { body: Readable.from(parts()), contentType: `multipart/form-data; boundary=${boundary}` };
}

function mbPerSec(bytes: number, ms: number): number {
  return bytes / MiB / (ms / 1000);
}

export async function benchEnvd(): Promise<Figure[]> {
  const dir = await mkdtemp(join(tmpdir(), "wrenn-bench-envd-"));
  const envd = await spawnEnvd({ env: { WRENN_ENVD_USER: process.env.USER || "root" } });
  const figures: Figure[] = [];
  const add = (name: string, value: number, unit: string, note?: string) =>
    figures.push({ suite: "envd", name, value, unit, ...(note ? { note } : {}) });
  try {
    // Idle memory first, before any work has grown the heap.
    await new Promise((r) => setTimeout(r, 1000));
    const idle = await memoryOf(envd.pid);
    add("idle RSS", idle.rss / MiB, "MiB");
    add("idle PSS", idle.pss / MiB, "MiB");

    const client = createClient(
      Process,
      createConnectTransport({ baseUrl: envd.url, httpVersion: "1.1" }),
    );
    const execTrue = async () => {
      for await (const res of client.start({ process: { cmd: "true" } })) {
        if (res.event?.event.case === "end" && res.event.event.value.exitCode !== 0) {
          throw new Error("`true` failed");
        }
      }
    };
    const execMs = await timeRuns(200, execTrue);
    add("exec `true` round trip p50", percentile(execMs, 50), "ms", "Connect over HTTP/1.1");
    add("exec `true` round trip p99", percentile(execMs, 99), "ms");

    const source = join(dir, "source.bin");
    execFileSync("sh", ["-c", `head -c ${transferMiB * MiB} /dev/urandom > "$0"`, source]);

    let start = process.hrtime.bigint();
    execFileSync("cp", [source, join(dir, "copy.bin")]);
    const cpMs = msSince(start);
    const bytes = transferMiB * MiB;
    add(`cp ${transferMiB} MiB`, mbPerSec(bytes, cpMs), "MB/s", "baseline");

    const target = join(dir, "uploaded.bin");
    const { body, contentType } = multipartFrom(source, "uploaded.bin");
    start = process.hrtime.bigint();
    const up = await fetch(`${envd.url}/files?path=${encodeURIComponent(target)}`, {
      method: "POST",
      body: Readable.toWeb(body) as ReadableStream,
      headers: { "content-type": contentType },
      duplex: "half",
    } as RequestInit);
    if (!up.ok) throw new Error(`upload: ${up.status} ${await up.text()}`);
    const upMs = msSince(start);
    add(
      `upload ${transferMiB} MiB`,
      mbPerSec(bytes, upMs),
      "MB/s",
      `${(mbPerSec(bytes, upMs) / mbPerSec(bytes, cpMs)).toFixed(2)}× cp`,
    );

    start = process.hrtime.bigint();
    const down = await fetch(`${envd.url}/files?path=${encodeURIComponent(target)}`);
    if (!down.ok || !down.body) throw new Error(`download: ${down.status}`);
    await pipeline(
      Readable.fromWeb(down.body as never),
      createWriteStream(join(dir, "downloaded.bin")),
    );
    const downMs = msSince(start);
    add(
      `download ${transferMiB} MiB`,
      mbPerSec(bytes, downMs),
      "MB/s",
      `${(mbPerSec(bytes, downMs) / mbPerSec(bytes, cpMs)).toFixed(2)}× cp`,
    );
    if ((await stat(join(dir, "downloaded.bin"))).size !== bytes)
      throw new Error("download size differs");
  } finally {
    await envd.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return figures;
}
