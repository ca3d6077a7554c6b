import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, stat, truncate, writeFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd } from "./helpers/envd.js";
import { type Kind, uploadBody } from "./helpers/upload-body.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
/** What each upload sends: far more than envd may hold, so a lost backpressure shows in its RSS. */
const uploadBytes = 192 * MiB;
/** envd's peak RSS may grow this much over an upload into a stalled disk (buffers, not the body). */
const allowedGrowth = 32 * MiB;

/** POSTs `body`; resolves with the status once envd answers. */
function post(
  url: string,
  kind: Kind,
  body: Readable,
  headers: Record<string, string>,
): Promise<number> {
  if (kind.endsWith("over h2")) {
    const session = http2.connect(new URL(url).origin);
    const stream = session.request({
      ":method": "POST",
      ":path": new URL(url).pathname + new URL(url).search,
      ...headers,
    });
    return new Promise<number>((resolve, reject) => {
      stream.on("response", (h) => {
        stream.resume();
        stream.on("end", () => resolve(Number(h[":status"])));
      });
      stream.on("error", reject);
      pipeline(body, stream).catch(reject);
    }).finally(() => session.close());
  }
  return new Promise((resolve, reject) => {
    // A connection of its own: how envd hands a new connection to its HTTP server is under test.
    const req = http.request(url, { method: "POST", headers, agent: false });
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    pipeline(body, req).catch(reject);
  });
}

/** Polls until `sent()` stops moving for a second (the transport is held back) or reaches `total`. */
async function untilStalled(sent: () => number, total: number): Promise<void> {
  let last = -1;
  let still = 0;
  while (sent() < total && still < 5) {
    still = sent() === last ? still + 1 : 0;
    last = sent();
    await sleep(200);
  }
}

/**
 * A disk slower than the socket, made real: the upload's filesystem is a loop-mounted ext4 that
 * the test freezes (fsfreeze) mid-upload, so envd's writes block in the kernel. envd must then
 * stop reading the socket, and its memory must not grow with what the client still has to send.
 * Needs root, e2fsprogs (mkfs.ext4) and util-linux (mount, fsfreeze).
 */
describe("envd uploads into a stalled disk", () => {
  let envd: RunningEnvd;
  let dir: string;
  let mountpoint: string;
  let mounted = false;
  let frozen = false;

  const freeze = async (on: boolean) => {
    await run("fsfreeze", [on ? "--freeze" : "--unfreeze", mountpoint]);
    frozen = on;
  };

  beforeAll(async () => {
    envd = await startEnvd();
    dir = await mkdtemp(join(tmpdir(), "wrenn-envd-disk-"));
    const image = join(dir, "disk.img");
    mountpoint = join(dir, "disk");
    await writeFile(image, "");
    await truncate(image, 1024 * MiB);
    await run("mkfs.ext4", ["-q", "-F", image]);
    await mkdir(mountpoint);
    // `-o loop` attaches with autoclear: unmounting also frees the loop device.
    await run("mount", ["-o", "loop", image, mountpoint]);
    mounted = true;
    // A first upload grows envd's heap once (tens of MiB): not what the cases measure.
    const warmup = uploadBody("multipart", 32 * MiB);
    const path = join(mountpoint, "warmup.bin");
    const url = `${envd.baseUrl}/files?${new URLSearchParams({ path, username: "root" })}`;
    expect(await post(url, "multipart", warmup.body, warmup.headers)).toBe(200);
    await rm(path);
  });
  afterAll(async () => {
    // Thaw first: envd's blocked writes (and so its exit) wait on it.
    if (frozen) await freeze(false).catch(() => {});
    await envd?.stop();
    if (mounted) await run("umount", [mountpoint]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each<Kind>(["multipart", "octet-stream", "multipart+gzip", "octet-stream over h2"])(
    "holds the client back instead of buffering: %s",
    { timeout: 120_000 },
    async (kind) => {
      const target = join(mountpoint, "big.bin");
      const { body, headers, sent } = uploadBody(kind, uploadBytes);
      const url = `${envd.baseUrl}/files?${new URLSearchParams({ path: target, username: "root" })}`;
      // Start the peak (VmHWM) afresh at the current RSS: earlier cases must not count here.
      await writeFile(`/proc/${envd.pid}/clear_refs`, "5");
      const before = (await envd.memory()).rss;
      const answered = post(url, kind, body, headers);
      try {
        // Let the upload reach the disk first, so the stall hits envd mid-write.
        while (sent() < 16 * MiB) await sleep(20);
        await freeze(true);
        await untilStalled(sent, uploadBytes);
        const held = sent();
        const growth = (await envd.memory()).peak - before;
        console.log(
          `${kind}: disk frozen, client held at ${(held / MiB).toFixed(0)} of ${uploadBytes / MiB} MiB, ` +
            `envd peak RSS +${(growth / MiB).toFixed(1)} MiB`,
        );
        expect(growth).toBeLessThan(allowedGrowth);
        expect(held).toBeLessThan(uploadBytes);
      } finally {
        if (frozen) await freeze(false);
      }
      expect(await answered).toBe(200);
      expect((await stat(target)).size).toBe(uploadBytes);
      await rm(target);
    },
  );
});
