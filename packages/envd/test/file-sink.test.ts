import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fstatSync } from "node:fs";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileSink } from "../src/http/file-sink.js";

const KiB = 1024;

/** How late a 1 ms timer, set as `write` begins, fires: how long the write held the event loop. */
async function timerLateness(write: () => Promise<void>): Promise<number> {
  const set = performance.now();
  const fired = new Promise<number>((resolve) =>
    setTimeout(() => resolve(performance.now() - set - 1), 1),
  );
  const written = write();
  const lateness = await fired;
  await written;
  return lateness;
}

describe("FileSink", () => {
  let dir: string;
  let reader: ChildProcess | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "wrenn-file-sink-"));
  });
  afterEach(async () => {
    reader?.kill("SIGKILL");
    reader = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("writes every chunk in order and closes the file", async () => {
    const chunks = [0, 1, 7, 64 * KiB, 1, 1024 * KiB, 3 * KiB + 5, 0, 200 * KiB].map((n) =>
      randomBytes(n),
    );
    const path = join(dir, "out.bin");
    const file = await open(path, "wx");
    // Taken now: a closed FileHandle reports -1, which no fstat could find.
    const fd = file.fd;
    await pipeline(Readable.from(chunks), new FileSink(file));
    expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
    expect(() => fstatSync(fd)).toThrow(/EBADF/);
  });

  it("fails on a write error and still closes the file", async () => {
    const path = join(dir, "read-only.bin");
    await writeFile(path, "");
    const file = await open(path, "r");
    const fd = file.fd;
    await expect(pipeline(Readable.from([randomBytes(KiB)]), new FileSink(file))).rejects.toThrow(
      /EBADF/,
    );
    expect(() => fstatSync(fd)).toThrow(/EBADF/);
  });

  // A FIFO stands in for a disk that holds its writer back: its reader (another process) sleeps
  // before the first read and again before the rest. The first blocked write runs on the event
  // loop and is slow, so the second waits in the thread pool while the loop keeps turning.
  it("after one slow write, writes off the event loop", { timeout: 20_000 }, async () => {
    const fifo = join(dir, "disk");
    execFileSync("mkfifo", [fifo]);
    const chunk = 256 * KiB;
    reader = spawn(
      "sh",
      ["-c", `exec <"$0"; sleep 0.5; head -c ${chunk} >/dev/null; sleep 1.5; cat >/dev/null`, fifo],
      { stdio: "ignore" },
    );
    const file = await open(fifo, "w");
    const sink = new FileSink(file);
    const write = (bytes: number) =>
      new Promise<void>((resolve, reject) =>
        sink.write(randomBytes(bytes), (err) => (err ? reject(err) : resolve())),
      );

    const first = await timerLateness(() => write(chunk));
    const secondStart = performance.now();
    const second = await timerLateness(() => write(chunk));
    const secondMs = performance.now() - secondStart;
    sink.end();
    await new Promise((resolve) => sink.once("close", resolve));

    // The setup holds writers back: the first write blocked the loop for the reader's sleep.
    expect(first).toBeGreaterThan(300);
    // The second was held back too (for the reader's second sleep), with the loop free.
    expect(secondMs).toBeGreaterThan(1_000);
    expect(second).toBeLessThan(300);
  });

  // A write sent to the thread pool adds an FSReqCallback to the process's active resources;
  // one made on the event loop is over before sink.write returns.
  it("comes back to the event loop once the thread pool writes fast again", {
    timeout: 20_000,
  }, async () => {
    const fifo = join(dir, "disk");
    execFileSync("mkfifo", [fifo]);
    reader = spawn("sh", ["-c", `exec <"$0"; sleep 0.5; cat >/dev/null`, fifo], {
      stdio: "ignore",
    });
    const file = await open(fifo, "w");
    const sink = new FileSink(file);
    const requests = () =>
      process.getActiveResourcesInfo().filter((r) => r === "FSReqCallback").length;
    // Whether the write went to the thread pool: only sink.write runs between the two counts.
    const write = (chunk: Buffer) =>
      new Promise<boolean>((resolve, reject) => {
        const before = requests();
        sink.write(chunk, (err) => (err ? reject(err) : resolve(pooled)));
        const pooled = requests() > before;
      });
    const chunk = randomBytes(1024 * KiB);

    // The reader's sleep makes the first write slow: it is made on the loop, the next are not.
    expect(await write(chunk)).toBe(false);
    expect(await write(chunk)).toBe(true);
    // The reader now keeps up: after a run of fast writes in the pool, they come back.
    let pooledMiB = 1;
    while (await write(chunk)) {
      pooledMiB++;
      if (pooledMiB > 512) break;
    }
    sink.end();
    await new Promise((resolve) => sink.once("close", resolve));
    expect(pooledMiB).toBeGreaterThanOrEqual(32);
    expect(pooledMiB).toBeLessThanOrEqual(512);
  });
});
