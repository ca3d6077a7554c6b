import { createHash, randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import v8 from "node:v8";
import vm from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type FilesystemEvent,
  NotEnoughSpaceError,
  NotFoundError,
  Sandbox,
  SandboxError,
  TimeoutError,
} from "../src/index.js";
import { ResettingProxy } from "./helpers/reset-proxy.js";
import { SMALL, startTestServer, type TestServer } from "./helpers/server.js";

// sandbox.files against a real single-host server: every method, streamed transfers (1 GiB by
// default, checked by sha256 with bounded memory), cancellation, timeouts and the watch stream.

/** WRENN_TEST_TRANSFER_MB overrides the size of the streamed round trip (default 1 GiB). */
const TRANSFER_MB = Number(process.env.WRENN_TEST_TRANSFER_MB ?? 1024);
const MiB = 1024 * 1024;

let server: TestServer;
let sandbox: Sandbox;

beforeAll(async () => {
  server = await startTestServer();
  sandbox = await Sandbox.create({
    apiUrl: server.url,
    apiKey: server.apiKey,
    ...SMALL,
    // Room for the big file; the disk is a sparse file, so this costs only what is written.
    diskSizeMb: TRANSFER_MB + 512,
  });
});

afterAll(async () => {
  await server?.close();
});

describe("files", () => {
  it("writes and reads text, bytes, blobs and web streams", async () => {
    const info = await sandbox.files.write("/home/user/a/b/hello.txt", "héllo\n");
    expect(info).toEqual({ name: "hello.txt", path: "/home/user/a/b/hello.txt", type: "file" });
    expect(await sandbox.files.read("/home/user/a/b/hello.txt")).toBe("héllo\n");

    const bytes = randomBytes(70_000);
    await sandbox.files.write("/tmp/bytes.bin", new Uint8Array(bytes));
    expect(Buffer.from(await sandbox.files.read("/tmp/bytes.bin", { format: "bytes" }))).toEqual(
      bytes,
    );

    await sandbox.files.write("/tmp/blob.txt", new Blob(["from ", "a blob"]));
    expect(await sandbox.files.read("/tmp/blob.txt")).toBe("from a blob");

    const web = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("web "));
        controller.enqueue(new TextEncoder().encode("stream"));
        controller.close();
      },
    });
    await sandbox.files.write("/tmp/web.txt", web);
    expect(await sandbox.files.read("/tmp/web.txt")).toBe("web stream");

    const many = await sandbox.files.write([
      { path: "/tmp/many/1.txt", data: "one" },
      { path: "/tmp/many/2.txt", data: "two" },
      { path: "/tmp/many/3.txt", data: Readable.from(["th", "ree"]) },
    ]);
    expect(many.map((w) => w.path)).toEqual([
      "/tmp/many/1.txt",
      "/tmp/many/2.txt",
      "/tmp/many/3.txt",
    ]);
    expect(await sandbox.files.read("/tmp/many/3.txt")).toBe("three");
  });

  it("lists, stats, makes directories, renames and removes", async () => {
    expect(await sandbox.files.makeDir("/tmp/tree/sub")).toBe(true);
    expect(await sandbox.files.makeDir("/tmp/tree/sub")).toBe(false);
    await sandbox.files.write("/tmp/tree/sub/f.txt", "12345");

    const top = await sandbox.files.list("/tmp/tree");
    expect(top.map((e) => [e.name, e.type])).toEqual([["sub", "dir"]]);
    const deep = await sandbox.files.list("/tmp/tree", { depth: 2 });
    expect(deep.map((e) => e.path).sort()).toEqual(["/tmp/tree/sub", "/tmp/tree/sub/f.txt"]);

    const info = await sandbox.files.getInfo("/tmp/tree/sub/f.txt");
    expect(info).toMatchObject({ name: "f.txt", type: "file", size: 5 });
    expect(info.modifiedTime).toBeInstanceOf(Date);
    expect(info.permissions).toMatch(/^-r/);

    const moved = await sandbox.files.rename("/tmp/tree/sub/f.txt", "/tmp/tree/g.txt");
    expect(moved).toMatchObject({ path: "/tmp/tree/g.txt", size: 5 });
    expect(await sandbox.files.exists("/tmp/tree/sub/f.txt")).toBe(false);
    expect(await sandbox.files.exists("/tmp/tree/g.txt")).toBe(true);

    await sandbox.files.remove("/tmp/tree");
    expect(await sandbox.files.exists("/tmp/tree")).toBe(false);
    await expect(sandbox.files.read("/tmp/tree/g.txt")).rejects.toBeInstanceOf(NotFoundError);
    await expect(sandbox.files.getInfo("/nope")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("watches a directory until stopped", async () => {
    await sandbox.files.makeDir("/tmp/watched");
    const events: FilesystemEvent[] = [];
    let exited = false;
    const watch = await sandbox.files.watchDir("/tmp/watched", (e) => events.push(e), {
      recursive: true,
      onExit: () => {
        exited = true;
      },
    });
    await sandbox.files.write("/tmp/watched/new.txt", "x");
    await sandbox.files.remove("/tmp/watched/new.txt");
    const deadline = Date.now() + 10_000;
    while (!events.some((e) => e.type === "remove" && e.name === "new.txt")) {
      if (Date.now() > deadline) throw new Error(`events so far: ${JSON.stringify(events)}`);
      await sleep(25);
    }
    expect(events).toContainEqual({ type: "create", name: "new.txt" });
    await watch.stop();
    expect(exited).toBe(false);
    await expect(sandbox.files.watchDir("/tmp/no-such-dir", () => {})).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it("writing several files stops at the first failure: nothing is written after the call failed", async () => {
    await sandbox.files.write("/tmp/batch-blocker", "a file, not a directory");
    const files = [
      { path: "/tmp/batch-blocker/under-a-file.txt", data: "x" },
      ...Array.from({ length: 40 }, (_, i) => ({ path: `/tmp/batch/${i}.txt`, data: "y" })),
    ];
    await expect(sandbox.files.write(files)).rejects.toThrow(/not a directory/);
    await sleep(1_000); // what a worker still went on with would have landed by now
    const { stdout } = await sandbox.commands.run("ls /tmp/batch 2>/dev/null | wc -l");
    // Only the writes already under way when the first one failed (one per other worker).
    expect(Number(stdout.trim())).toBeLessThanOrEqual(3);
  });

  it("closes the watch's request when the watch ends on its own (a callback threw)", async () => {
    await sandbox.files.makeDir("/tmp/watched-throws");
    const proxy = await ResettingProxy.start(server.url, 0);
    let request: Socket | undefined;
    proxy.onClientData = (chunk, client) => {
      if (chunk.toString("latin1").includes("/files/watch?")) request = client;
    };
    try {
      const viaProxy = await Sandbox.connect(sandbox.sandboxId, {
        apiUrl: proxy.url,
        apiKey: server.apiKey,
      });
      let exit: Error | undefined;
      const watch = await viaProxy.files.watchDir(
        "/tmp/watched-throws",
        () => {
          throw new Error("a bug in the callback");
        },
        { onExit: (err) => (exit = err) },
      );
      await sandbox.files.write("/tmp/watched-throws/a.txt", "x");
      const deadline = Date.now() + 5_000;
      while (!exit || !request?.closed) {
        if (Date.now() > deadline)
          throw new Error(`onExit: ${exit?.message}; request closed: ${request?.closed}`);
        await sleep(25);
      }
      expect(exit.message).toBe("a bug in the callback");
      await watch.stop();
    } finally {
      await proxy.close();
    }
  });

  it(`streams ${TRANSFER_MB} MiB up and down, intact by sha256, without buffering it`, {
    timeout: 600_000,
  }, async () => {
    const block = randomBytes(MiB);
    const sent = createHash("sha256");
    // Each chunk differs (its index in the first bytes), so a reordered or dropped chunk shows.
    const chunks = async function* () {
      for (let i = 0; i < TRANSFER_MB; i++) {
        const chunk = Buffer.from(block);
        chunk.writeUInt32BE(i, 0);
        sent.update(chunk);
        yield chunk;
      }
    };
    // Live memory (after a full GC), so garbage awaiting collection does not count as held.
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const live = () => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const baseline = live();
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, live());
    }, 1000);
    try {
      const upStart = performance.now();
      await sandbox.files.write("/home/user/big.bin", Readable.from(chunks()));
      const upMs = performance.now() - upStart;

      const downStart = performance.now();
      const received = createHash("sha256");
      let size = 0;
      const stream = await sandbox.files.read("/home/user/big.bin", { format: "stream" });
      for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
        received.update(chunk);
        size += chunk.byteLength;
      }
      const downMs = performance.now() - downStart;
      expect(size).toBe(TRANSFER_MB * MiB);
      expect(received.digest("hex")).toBe(sent.digest("hex"));
      console.log(
        `files: ${TRANSFER_MB} MiB up ${(TRANSFER_MB / (upMs / 1000)).toFixed(0)} MB/s, down ${(
          TRANSFER_MB / (downMs / 1000)
        ).toFixed(0)} MB/s, live memory grew at most ${((peak - baseline) / MiB).toFixed(0)} MiB`,
      );
    } finally {
      clearInterval(sampler);
    }
    // Client and server share this process; both stream, so it grows by buffers (a few dozen
    // MiB under load), never by the file's size.
    expect(peak - baseline).toBeLessThan(96 * MiB);
  });

  it("a refused write of several MiB gets its error, never 'could not be reached'", async () => {
    // envd refuses these before reading the body and answers while it is still being sent.
    await sandbox.files.write("/home/user/plain", "x");
    const body = randomBytes(8 * MiB);
    for (const data of [body, body, Readable.from([body.subarray(0, 4 * MiB), body])]) {
      const err = await sandbox.files.write("/home/user/plain/x.bin", data).catch((e) => e);
      expect(err).toBeInstanceOf(SandboxError);
      expect(err).toMatchObject({ status: 409, code: "failed_precondition" });
      expect((err as Error).message).toMatch(/not a directory/);
    }
    await sandbox.files.remove("/home/user/plain");
  });

  it("a write or mkdir into a full disk fails with NotEnoughSpaceError and leaves nothing", async () => {
    const small = await Sandbox.create({
      apiUrl: server.url,
      apiKey: server.apiKey,
      ...SMALL,
      diskSizeMb: 64,
    });
    try {
      // dd stops at ENOSPC (and exits non-zero). Writeback then returns the blocks ext4 held
      // for delayed allocation, so a second dd, in 4 KiB blocks, takes the last of them.
      await small.commands.run(
        "dd if=/dev/zero of=/home/user/fill bs=1M 2>/dev/null; sync; dd if=/dev/zero of=/home/user/fill2 bs=4k 2>/dev/null; sync; true",
      );
      // A replayable body, which the SDK retries on a retryable status (errors.test checks a
      // 507 is not one); large enough that envd answers while it is still being sent.
      const err = await small.files
        .write("/home/user/more.bin", randomBytes(8 * MiB))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotEnoughSpaceError);
      expect(err).toMatchObject({ status: 507, code: "insufficient_storage" });
      expect((err as Error).message).toMatch(/no space/i);
      const names = (await small.files.list("/home/user")).map((e) => e.name);
      expect(names.filter((n) => n.includes("more.bin"))).toEqual([]);
      // A directory needs a block too: the same error, not a rate limit.
      const mkdir = await small.files.makeDir("/home/user/more").catch((e: unknown) => e);
      expect(mkdir).toBeInstanceOf(NotEnoughSpaceError);
      expect((mkdir as Error).message).toMatch(/no space/i);
    } finally {
      await small.kill();
    }
  });

  it("aborts a download mid-stream and times out a slow read", async () => {
    const controller = new AbortController();
    const stream = await sandbox.files.read("/home/user/big.bin", {
      format: "stream",
      signal: controller.signal,
    });
    const reader = stream.getReader();
    await reader.read();
    controller.abort(new Error("enough"));
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) return;
      })(),
    ).rejects.toThrow("enough");

    await expect(
      sandbox.files.read("/home/user/big.bin", { format: "bytes", timeoutMs: 20 }),
    ).rejects.toBeInstanceOf(TimeoutError);
  });
});
