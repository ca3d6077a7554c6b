import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

function mbPerSec(bytes: number, ms: number): number {
  return bytes / MiB / (ms / 1000);
}

/** `node -e 0` run to its exit: the baseline of envd's cold start. */
function nodeNothing(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", "0"], { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", () => resolve());
  });
}

const COLD_RUNS = 15;

export async function benchEnvd(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const add = (name: string, value: number, unit: string, note?: string) =>
    figures.push({ suite: "envd", name, value, unit, ...(note ? { note } : {}) });
  // Cold start: launch to the first answer ("envd listening"), taken in turns with the baseline.
  const cold: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < COLD_RUNS; i++) {
    let start = process.hrtime.bigint();
    await nodeNothing();
    bare.push(msSince(start));
    start = process.hrtime.bigint();
    const started = await spawnEnvd({ env: { WRENN_ENVD_USER: process.env.USER || "root" } });
    cold.push(msSince(start));
    await started.stop();
  }
  const bareMs = percentile(bare, 50);
  add("node -e 0 p50", bareMs, "ms", "baseline");
  add(
    "envd cold start → listening p50",
    percentile(cold, 50),
    "ms",
    `${(percentile(cold, 50) / bareMs).toFixed(2)}× node -e 0`,
  );

  const dir = await mkdtemp(join(tmpdir(), "wrenn-bench-envd-"));
  const envd = await spawnEnvd({ env: { WRENN_ENVD_USER: process.env.USER || "root" } });
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

    // curl is the client: it measures envd rather than a Node client's stream overhead.
    const target = join(dir, "uploaded.bin");
    const url = `${envd.url}/files?path=${encodeURIComponent(target)}`;
    start = process.hrtime.bigint();
    execFileSync("curl", ["-sfS", "-o", "/dev/null", "-F", `file=@${source}`, url]);
    const upMs = msSince(start);
    add(
      `upload ${transferMiB} MiB`,
      mbPerSec(bytes, upMs),
      "MB/s",
      `${(mbPerSec(bytes, upMs) / mbPerSec(bytes, cpMs)).toFixed(2)}× cp, multipart, curl`,
    );

    start = process.hrtime.bigint();
    execFileSync("curl", ["-sfS", "-o", join(dir, "downloaded.bin"), url]);
    const downMs = msSince(start);
    add(
      `download ${transferMiB} MiB`,
      mbPerSec(bytes, downMs),
      "MB/s",
      `${(mbPerSec(bytes, downMs) / mbPerSec(bytes, cpMs)).toFixed(2)}× cp, curl`,
    );
    if ((await stat(join(dir, "downloaded.bin"))).size !== bytes)
      throw new Error("download size differs");
  } finally {
    await envd.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return figures;
}
