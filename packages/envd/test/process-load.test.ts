import { setTimeout as sleep } from "node:timers/promises";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Process, Signal } from "@wrenn/proto/process";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd } from "./helpers/envd.js";

const MiB = 1024 * 1024;
/** envd's peak RSS must stay under this however much a process prints. */
const peakLimit = 150 * MiB;

type Events = AsyncIterable<{ event?: { event: { case: string | undefined; value?: unknown } } }>;

/** Consumes a stream, counting output bytes; `pace` runs between events (a slow reader). */
async function countOutput(events: Events, pace?: (received: number) => Promise<void>) {
  let bytes = 0;
  let pid = 0;
  let exitCode: number | undefined;
  for await (const { event } of events) {
    if (event?.event.case === "start") pid = (event.event.value as { pid: number }).pid;
    if (event?.event.case === "data")
      bytes += (event.event.value as { output: { value: Uint8Array } }).output.value.byteLength;
    if (event?.event.case === "end")
      exitCode = (event.event.value as { exitCode: number }).exitCode;
    if (pace) await pace(bytes);
  }
  return { bytes, pid, exitCode };
}

/** Reads a stream's first event, its `start`, and returns the pid. */
async function startedPid(
  events: AsyncIterator<{ event?: { event: { case: string | undefined; value?: unknown } } }>,
) {
  const event = (await events.next()).value?.event?.event;
  if (event?.case !== "start") throw new Error(`expected a start event, got ${event?.case}`);
  return (event.value as { pid: number }).pid;
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

describe("process output under load", () => {
  let envd: RunningEnvd;
  /** Like E2B's clients (connect-web), it does not ask for gzip: envd's own cost is measured. */
  let client: Client<typeof Process>;

  // A fresh envd per test: VmHWM is a lifetime peak.
  beforeEach(async () => {
    envd = await startEnvd();
    client = createClient(
      Process,
      createConnectTransport({ baseUrl: envd.baseUrl, httpVersion: "1.1", acceptCompression: [] }),
    );
    const idle = await envd.memory();
    console.log(`envd idle: rss ${mib(idle.rss)}`);
  });

  afterEach(async () => {
    await envd?.stop();
  });

  it("streams 1 GiB with backpressure: exact byte count, bounded envd memory", async () => {
    const size = 1024 * MiB;
    const started = performance.now();
    const result = await countOutput(
      client.start({ process: { cmd: "head", args: ["-c", String(size), "/dev/zero"] } }),
    );
    const seconds = (performance.now() - started) / 1000;
    const memory = await envd.memory();
    console.log(
      `1 GiB stdout: ${(size / MiB / seconds).toFixed(0)} MiB/s; envd rss ${mib(memory.rss)}, peak ${mib(memory.peak)}`,
    );
    expect(result).toMatchObject({ bytes: size, exitCode: 0 });
    expect(memory.peak).toBeLessThan(peakLimit);
  }, 180_000);

  it("paces two attached streams by the slower one, both complete and exact", async () => {
    const size = 128 * MiB;
    const tag = `load-${process.pid}`;
    // The process waits for a line on stdin, so both streams are attached before any output.
    const start = client.start({
      process: { cmd: "sh", args: ["-c", `read go; head -c ${size} /dev/zero`] },
      tag,
      stdin: true,
    });
    const iterator = start[Symbol.asyncIterator]();
    const pid = await startedPid(iterator);
    const fast = countOutput({ [Symbol.asyncIterator]: () => iterator });
    const connect = client.connect({ process: { selector: { case: "tag", value: tag } } });
    const slowIterator = connect[Symbol.asyncIterator]();
    await slowIterator.next(); // its start event: attached
    let last = 0;
    const slow = countOutput({ [Symbol.asyncIterator]: () => slowIterator }, async (received) => {
      if (received - last >= 4 * MiB) {
        last = received;
        await sleep(20);
      }
    });
    await client.sendInput({
      process: { selector: { case: "pid", value: pid } },
      input: { input: { case: "stdin", value: new TextEncoder().encode("go\n") } },
    });
    const [a, b] = await Promise.all([fast, slow]);
    const memory = await envd.memory();
    console.log(
      `two streams x 128 MiB (one slow): envd rss ${mib(memory.rss)}, peak ${mib(memory.peak)}`,
    );
    expect(a).toMatchObject({ bytes: size, exitCode: 0 });
    expect(b).toMatchObject({ bytes: size, exitCode: 0 });
    expect(memory.peak).toBeLessThan(peakLimit);
  }, 120_000);

  it("streams a PTY's output with backpressure, to the last byte", async () => {
    const size = 64 * MiB;
    const result = await countOutput(
      client.start({
        process: { cmd: "head", args: ["-c", String(size), "/dev/zero"] },
        pty: { size: { cols: 80, rows: 24 } },
      }),
    );
    const memory = await envd.memory();
    console.log(`64 MiB through a PTY: envd peak ${mib(memory.peak)}`);
    expect(result).toMatchObject({ bytes: size, exitCode: 0 });
    expect(memory.peak).toBeLessThan(peakLimit);
  }, 120_000);

  it("refuses terminal input its program does not read past 8 MiB, its memory bounded", async () => {
    const abort = new AbortController();
    const stream = client.start(
      { process: { cmd: "sleep", args: ["600"] }, pty: { size: { cols: 80, rows: 24 } } },
      { signal: abort.signal },
    );
    const pid = await startedPid(stream[Symbol.asyncIterator]());
    const process = { selector: { case: "pid" as const, value: pid } };
    const chunk = new Uint8Array(64 * 1024).fill(97);
    let sent = 0;
    let refused: unknown;
    while (sent < 64 * MiB && !refused) {
      await client.sendInput({ process, input: { input: { case: "pty", value: chunk } } }).then(
        () => {
          sent += chunk.length;
        },
        (err: unknown) => {
          refused = err;
        },
      );
    }
    const memory = await envd.memory();
    console.log(`PTY input to sleep: ${mib(sent)} taken, envd peak ${mib(memory.peak)}`);
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);
    // 8 MiB may wait in envd. How much more the terminal takes (and its line discipline
    // discards, since `sleep` never reads) depends on timing: one CI run saw 26.4 MiB taken.
    expect(memory.peak).toBeLessThan(peakLimit);
    // The terminal is still there: the process ends on a signal as usual.
    await client.sendSignal({ process, signal: Signal.SIGKILL });
    abort.abort();
  }, 120_000);

  it("drains a background process nobody is attached to without buffering it", async () => {
    const abort = new AbortController();
    const stream = client.start(
      {
        process: { cmd: "head", args: ["-c", String(512 * MiB), "/dev/zero"] },
        tag: `detached-${process.pid}`,
      },
      { signal: abort.signal },
    );
    const pid = await startedPid(stream[Symbol.asyncIterator]());
    abort.abort();
    // With nobody attached its output is read and dropped, so it runs to the end.
    while ((await client.list({})).processes.some((p) => p.pid === pid)) await sleep(100);
    const memory = await envd.memory();
    expect(memory.peak).toBeLessThan(peakLimit);
  }, 120_000);

  it("measures the exec round trip of `true`", async () => {
    const runs = 200;
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      const result = await countOutput(client.start({ process: { cmd: "true" } }));
      times.push(performance.now() - started);
      expect(result.exitCode).toBe(0);
    }
    times.sort((a, b) => a - b);
    const at = (q: number) =>
      (times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0).toFixed(2);
    console.log(
      `exec round trip of true over HTTP/1.1 Connect (${runs} runs): p50 ${at(0.5)} ms, p99 ${at(0.99)} ms`,
    );
  }, 120_000);
});
