import { execFile, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, chown, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd, TEST_USER } from "./helpers/envd.js";

const MiB = 1024 * 1024;

interface Part {
  filename?: string;
  /** A file on disk, streamed, or literal bytes. */
  source: string | Buffer;
  field?: string;
}

/** A multipart/form-data body streamed part by part: a 1 GiB part never sits in memory here either. */
function multipart(parts: Part[]): { boundary: string; body: Readable; length: Promise<number> } {
  const boundary = `----wrenn${randomBytes(12).toString("hex")}`;
  const head = (part: Part) =>
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${part.field ?? "file"}"${
        part.filename === undefined ? "" : `; filename="${part.filename}"`
      }\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
  const tail = Buffer.from(`--${boundary}--\r\n`);
  async function* chunks() {
    for (const part of parts) {
      yield head(part);
      if (typeof part.source === "string")
        yield* createReadStream(part.source, { highWaterMark: MiB });
      else yield part.source;
      yield Buffer.from("\r\n");
    }
    yield tail;
  }
  const length = (async () => {
    let total = tail.length;
    for (const part of parts) {
      const size =
        typeof part.source === "string" ? (await stat(part.source)).size : part.source.length;
      total += head(part).length + size + 2;
    }
    return total;
  })();
  return { boundary, body: Readable.from(chunks()), length };
}

/** POSTs a streamed body with node:http (fetch would need duplex streams); answers status and JSON. */
async function post(url: string, parts: Part[]): Promise<{ status: number; json: unknown }> {
  const { boundary, body, length } = multipart(parts);
  const contentLength = await length;
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      headers: {
        "content-type": `multipart/form-data; boundary=${boundary}`,
        "content-length": contentLength,
      },
    });
    req.on("response", async (res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      const text = Buffer.concat(chunks).toString("utf8");
      resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
    });
    req.on("error", reject);
    pipeline(body, req).catch(reject);
  });
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path, { highWaterMark: MiB }), hash);
  return hash.digest("hex");
}

/** Downloads into a file with node:http (leaner than fetch for bulk bytes). */
function download(
  url: string,
  to: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          resolve({ status: res.statusCode ?? 0, headers: res.headers });
          return;
        }
        pipeline(res, createWriteStream(to)).then(
          () => resolve({ status: 200, headers: res.headers }),
          reject,
        );
      })
      .on("error", reject);
  });
}

function q(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

describe("envd /files", () => {
  let envd: RunningEnvd;
  let uid: number;
  let home: string;

  beforeAll(async () => {
    envd = await startEnvd();
    uid = Number(execFileSync("id", ["-u", TEST_USER], { encoding: "utf8" }));
    await chmod(envd.dir, 0o755);
    home = join(envd.dir, "user");
    await mkdir(home);
    await chown(
      home,
      uid,
      uid === 0 ? 0 : Number(execFileSync("id", ["-g", TEST_USER], { encoding: "utf8" })),
    );
  });
  afterAll(async () => {
    await envd?.stop();
  });

  it("uploads into missing parents, owned by the user, and downloads the same bytes", async () => {
    const path = join(home, "new", "parents", "hello.txt");
    const res = await post(`${envd.baseUrl}/files?${q({ path })}`, [
      { filename: "hello.txt", source: Buffer.from("hello") },
    ]);
    expect(res.status).toBe(200);
    expect(res.json).toEqual([{ name: "hello.txt", type: "file", path }]);
    expect(await readFile(path, "utf8")).toBe("hello");
    for (const p of [join(home, "new"), join(home, "new", "parents"), path])
      expect((await stat(p)).uid).toBe(uid);
    expect((await stat(path)).mode & 0o777).toBe(0o644);

    const got = await fetch(`${envd.baseUrl}/files?${q({ path, username: TEST_USER })}`);
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe("application/octet-stream");
    expect(got.headers.get("content-length")).toBe("5");
    expect(got.headers.get("content-disposition")).toContain('filename="hello.txt"');
    expect(await got.text()).toBe("hello");

    // Overwrite: replaced whole, same owner, no temporary file left behind.
    const again = await post(`${envd.baseUrl}/files?${q({ path })}`, [
      { filename: "x", source: Buffer.from("bye") },
    ]);
    expect(again.status).toBe(200);
    expect(await readFile(path, "utf8")).toBe("bye");
    expect(await readdir(join(home, "new", "parents"))).toEqual(["hello.txt"]);
  });

  // CI failure of examples "run-tests": of several uploads making the same new parent at once,
  // one made it and the others, seeing it before it was chowned to the user, answered 403.
  it("lets concurrent uploads share the missing parents they all make", async () => {
    for (let round = 0; round < 20; round++) {
      const dir = join(home, `together-${round}`, "deeper");
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          post(`${envd.baseUrl}/files?${q({ path: join(dir, `f${i}.txt`) })}`, [
            { filename: "x", source: Buffer.from(`file ${i}`) },
          ]),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
      expect((await readdir(dir)).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `f${i}.txt`));
      expect((await stat(dirname(dir))).uid).toBe(uid);
    }
  });

  it("uploads as root when asked, and resolves relative paths in the user's home", async () => {
    const path = join(envd.dir, "by-root.txt");
    const res = await post(`${envd.baseUrl}/files?${q({ path, username: "root" })}`, [
      { source: Buffer.from("r") },
    ]);
    expect(res.status).toBe(200);
    expect((await stat(path)).uid).toBe(0);
    const rel = await post(
      `${envd.baseUrl}/files?${q({ path: "wrenn-files-test.txt", username: "root" })}`,
      [{ source: Buffer.from("r") }],
    );
    expect(rel.json).toEqual([
      { name: "wrenn-files-test.txt", type: "file", path: "/root/wrenn-files-test.txt" },
    ]);
    await rm("/root/wrenn-files-test.txt");
  });

  it("puts several parts into a directory under their own names, or at the paths they name", async () => {
    const dir = join(home, "multi");
    const res = await post(`${envd.baseUrl}/files?${q({ path: `${dir}/` })}`, [
      { filename: "one.txt", source: Buffer.from("1") },
      { field: "note", source: Buffer.from("ignored") },
      { filename: "two.txt", source: Buffer.from("22") },
    ]);
    expect(res.status).toBe(200);
    expect(res.json).toEqual([
      { name: "one.txt", type: "file", path: join(dir, "one.txt") },
      { name: "two.txt", type: "file", path: join(dir, "two.txt") },
    ]);
    expect(await readFile(join(dir, "two.txt"), "utf8")).toBe("22");
    // A file name is UTF-8, as FormData sends it (never read as latin1).
    const utf8 = await post(`${envd.baseUrl}/files?${q({ path: `${dir}/` })}`, [
      { filename: "ü☃ 100%41.txt", source: Buffer.from("3") },
    ]);
    expect(utf8.json).toEqual([
      { name: "ü☃ 100%41.txt", type: "file", path: join(dir, "ü☃ 100%41.txt") },
    ]);
    expect(await readFile(join(dir, "ü☃ 100%41.txt"), "utf8")).toBe("3");

    // No ?path=: each part's file name is its path (E2B's SDK writes several files this way).
    const named = await post(`${envd.baseUrl}/files`, [
      { filename: join(dir, "abs.txt"), source: Buffer.from("a") },
      { filename: `${dir.slice(home.length + 1)}/rel.txt`, source: Buffer.from("b") },
    ]);
    expect(named.status).toBe(200);
    const userHome = execFileSync("sh", ["-c", `getent passwd ${TEST_USER} | cut -d: -f6`], {
      encoding: "utf8",
    }).trim();
    expect(named.json).toEqual([
      { name: "abs.txt", type: "file", path: join(dir, "abs.txt") },
      { name: "rel.txt", type: "file", path: join(userHome, "multi", "rel.txt") },
    ]);
    await rm(join(userHome, "multi"), { recursive: true });
  });

  it("accepts gzip-encoded uploads, multipart or raw", async () => {
    const { boundary, body } = multipart([
      { filename: "gz.txt", source: Buffer.from("zipped multipart") },
    ]);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    const path = join(home, "gz.txt");
    const res = await fetch(`${envd.baseUrl}/files?${q({ path })}`, {
      method: "POST",
      headers: {
        "content-type": `multipart/form-data; boundary=${boundary}`,
        "content-encoding": "gzip",
      },
      body: gzipSync(Buffer.concat(chunks)),
    });
    expect(await res.json()).toEqual([{ name: "gz.txt", type: "file", path }]);
    expect(await readFile(path, "utf8")).toBe("zipped multipart");
    const raw = await fetch(`${envd.baseUrl}/files?${q({ path })}`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream", "content-encoding": "gzip" },
      body: gzipSync("zipped raw"),
    });
    expect(raw.status).toBe(200);
    expect(await readFile(path, "utf8")).toBe("zipped raw");
    // A body that is not gzip breaks on its first bytes, which may come before envd listens for
    // the break (while it looks at the target): answered at once either way, never left hanging.
    for (let i = 0; i < 40; i++) {
      for (const type of [
        `multipart/form-data; boundary=${boundary}`,
        "application/octet-stream",
      ]) {
        const broken = await fetch(`${envd.baseUrl}/files?${q({ path })}`, {
          method: "POST",
          headers: { "content-type": type, "content-encoding": "gzip" },
          body: "not gzip at all",
          signal: AbortSignal.timeout(10_000),
        });
        expect(broken.status, type).toBe(400);
        expect(await broken.json()).toMatchObject({ code: "invalid_argument" });
      }
    }
    expect(await readFile(path, "utf8")).toBe("zipped raw");
  });

  it("refuses bad requests with JSON errors", async () => {
    const dir = join(home, "a-dir");
    await mkdir(dir, { recursive: true });
    await chown(dir, uid, Number(execFileSync("id", ["-g", TEST_USER], { encoding: "utf8" })));
    const asDir = await fetch(`${envd.baseUrl}/files?${q({ path: dir })}`);
    expect(asDir.status).toBe(400);
    expect(await asDir.json()).toMatchObject({ code: "invalid_argument" });
    const missing = await fetch(`${envd.baseUrl}/files?${q({ path: join(home, "nope") })}`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "not_found" });
    const noPath = await fetch(`${envd.baseUrl}/files`);
    expect(noPath.status).toBe(400);
    const noName = await post(`${envd.baseUrl}/files`, [{ source: Buffer.from("x") }]);
    expect(noName.status).toBe(400);
    const noParts = await post(`${envd.baseUrl}/files?${q({ path: join(home, "empty") })}`, []);
    expect(noParts.status).toBe(400);
    const notMultipart = await fetch(`${envd.baseUrl}/files?${q({ path: join(home, "t") })}`, {
      method: "POST",
      body: "x",
    });
    expect(notMultipart.status).toBe(400);
    const twice = await post(`${envd.baseUrl}/files?${q({ path: join(home, "same.txt") })}`, [
      { filename: "a", source: Buffer.from("a") },
      { filename: "b", source: Buffer.from("b") },
    ]);
    expect(twice.status).toBe(400);
    // An existing directory receives a part under the part's own name…
    const ontoDir = await post(`${envd.baseUrl}/files?${q({ path: dir })}`, [
      { filename: "in.txt", source: Buffer.from("x") },
    ]);
    expect(ontoDir.json).toEqual([{ name: "in.txt", type: "file", path: join(dir, "in.txt") }]);
    // …which it must have.
    const unnamed = await post(`${envd.baseUrl}/files?${q({ path: dir })}`, [
      { source: Buffer.from("x") },
    ]);
    expect(unnamed.status).toBe(400);
    const unknownUser = await fetch(
      `${envd.baseUrl}/files?${q({ path: "/etc/hostname", username: "no-such-user" })}`,
    );
    expect(unknownUser.status).toBe(400);
  });

  it("keeps the user out of what it may not read or write", async () => {
    const secret = join(envd.dir, "secret");
    await writeFile(secret, "root only");
    await chmod(secret, 0o600);
    const denied = await fetch(`${envd.baseUrl}/files?${q({ path: secret })}`);
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ code: "permission_denied" });
    const asRoot = await fetch(`${envd.baseUrl}/files?${q({ path: secret, username: "root" })}`);
    expect(await asRoot.text()).toBe("root only");

    const rootDir = join(envd.dir, "root-dir");
    await mkdir(rootDir, { mode: 0o755 });
    const upload = await post(`${envd.baseUrl}/files?${q({ path: join(rootDir, "f") })}`, [
      { source: Buffer.from("x") },
    ]);
    expect(upload.status).toBe(403);
    const overwrite = await post(`${envd.baseUrl}/files?${q({ path: secret })}`, [
      { source: Buffer.from("x") },
    ]);
    expect(overwrite.status).toBe(403);
    expect(await readFile(secret, "utf8")).toBe("root only");
    expect(await readdir(rootDir)).toEqual([]);
    expect((await readdir(envd.dir)).filter((name) => name.includes("wrenn-upload"))).toEqual([]);
  });

  it("leaves no file behind when the client drops an upload halfway", async () => {
    const path = join(home, "dropped.bin");
    const { boundary, body } = multipart([
      { filename: "dropped.bin", source: randomBytes(8 * MiB) },
    ]);
    const req = http.request(`${envd.baseUrl}/files?${q({ path })}`, {
      method: "POST",
      headers: {
        "content-type": `multipart/form-data; boundary=${boundary}`,
        "content-length": 64 * MiB,
      },
    });
    req.on("error", () => {});
    // Send half of the part (no closing boundary), then hang up.
    let sent = 0;
    for await (const chunk of body) {
      const piece = (chunk as Buffer).subarray(0, Math.max(0, 4 * MiB - sent));
      if (piece.length === 0) break;
      sent += piece.length;
      if (!req.write(piece)) await new Promise((resolve) => req.once("drain", resolve));
    }
    await sleep(300);
    req.destroy();
    const deadline = Date.now() + 10_000;
    while ((await readdir(home)).some((name) => name.includes("dropped")) && Date.now() < deadline)
      await sleep(50);
    expect((await readdir(home)).filter((name) => name.includes("dropped"))).toEqual([]);
    expect((await fetch(`${envd.baseUrl}/health`)).status).toBe(204);
  });

  it("serves downloads over cleartext HTTP/2 too", async () => {
    const path = join(home, "h2.bin");
    const bytes = randomBytes(3 * MiB);
    await writeFile(path, bytes);
    const session = http2.connect(envd.baseUrl);
    try {
      const stream = session.request({ ":path": `/files?${q({ path })}` });
      const chunks: Buffer[] = [];
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) =>
        stream.once("response", resolve),
      );
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      expect(headers[":status"]).toBe(200);
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    } finally {
      session.close();
    }
  });

  it("moves 1 GiB up and down byte for byte with envd's memory bounded", {
    timeout: 600_000,
  }, async () => {
    const source = join(envd.dir, "big.bin");
    await promisify(execFile)("sh", ["-c", `head -c ${1024 * MiB} /dev/urandom > ${source}`]);
    const expected = await sha256File(source);
    const target = join(home, "big", "uploaded.bin");

    const up = await post(`${envd.baseUrl}/files?${q({ path: target })}`, [
      { filename: "big.bin", source },
    ]);
    expect(up).toMatchObject({ status: 200 });
    expect((await stat(target)).size).toBe(1024 * MiB);
    expect(await sha256File(target)).toBe(expected);
    const afterUpload = await envd.memory();

    const copy = join(envd.dir, "downloaded.bin");
    const down = await download(`${envd.baseUrl}/files?${q({ path: target })}`, copy);
    expect(down.status).toBe(200);
    expect(down.headers["content-length"]).toBe(String(1024 * MiB));
    expect(await sha256File(copy)).toBe(expected);
    const afterDownload = await envd.memory();
    console.log(
      `envd memory, 1 GiB: peak RSS (VmHWM) ${(afterUpload.peak / MiB).toFixed(1)} MiB after upload, ` +
        `${(afterDownload.peak / MiB).toFixed(1)} MiB after download; RSS now ${(afterDownload.rss / MiB).toFixed(1)} MiB`,
    );
    expect(afterDownload.peak).toBeLessThan(150 * MiB);
    await rm(source);
    await rm(copy);
    await rm(target);
  });

  it("measures upload and download of 256 MiB next to cp", { timeout: 300_000 }, async () => {
    const size = 256 * MiB;
    const source = join(envd.dir, "bench.bin");
    await promisify(execFile)("sh", ["-c", `head -c ${size} /dev/urandom > ${source}`]);
    const mbps = (ms: number) => (size / 1e6 / (ms / 1000)).toFixed(0);

    let start = performance.now();
    await promisify(execFile)("cp", [source, join(envd.dir, "bench-cp.bin")]);
    const cpMs = performance.now() - start;

    start = performance.now();
    const up = await post(
      `${envd.baseUrl}/files?${q({ path: join(envd.dir, "bench-up.bin"), username: "root" })}`,
      [{ filename: "bench.bin", source }],
    );
    const upMs = performance.now() - start;
    expect(up).toMatchObject({ status: 200 });

    start = performance.now();
    const down = await download(
      `${envd.baseUrl}/files?${q({ path: source, username: "root" })}`,
      join(envd.dir, "bench-down.bin"),
    );
    const downMs = performance.now() - start;
    expect(down.status).toBe(200);

    console.log(
      `256 MiB: cp ${mbps(cpMs)} MB/s, upload ${mbps(upMs)} MB/s, download ${mbps(downMs)} MB/s`,
    );
    expect((await stat(join(envd.dir, "bench-down.bin"))).size).toBe(size);
    for (const name of ["bench.bin", "bench-cp.bin", "bench-up.bin", "bench-down.bin"])
      await rm(join(envd.dir, name));
  });
});
