import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd } from "./helpers/envd.js";
import { type Kind, uploadBody } from "./helpers/upload-body.js";

// An upload envd refuses before it has read the body (a bad path) or while reading it (a full
// disk) is answered with its error while the client is still sending. Closing the connection
// with unread bytes made the kernel reset it, and the reset often overtook the answer: the
// client saw "connection reset" (the control plane: "sandbox unreachable") instead of the error.
// Needs root (mounts a small tmpfs as the full disk).

const run = promisify(execFile);
const MiB = 1024 * 1024;
const kinds: Kind[] = ["octet-stream", "octet-stream+gzip", "multipart", "multipart+gzip"];

interface Answer {
  status: number;
  json: { code?: string; message?: string };
}

/**
 * POSTs `bytes` to `url` and resolves with envd's answer, then hangs up if envd answered before
 * the body was all sent (as the control plane does).
 */
async function send(url: string, kind: Kind, bytes: number): Promise<Answer> {
  const { body, headers } = uploadBody(kind, bytes);
  const req = http.request(url, { method: "POST", headers, agent: false });
  const sent = pipeline(body, req).catch(() => {});
  try {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", reject);
    });
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    return {
      status: res.statusCode ?? 0,
      json: JSON.parse(Buffer.concat(chunks).toString("utf8")),
    };
  } finally {
    req.destroy();
    await sent;
  }
}

/**
 * HTTP/1.1 by hand over one connection, for a client that sends a whole request whatever the
 * answer (Node's client stops writing once an answer has come).
 */
class RawConnection {
  private buffered = Buffer.alloc(0);
  private wake: () => void = () => {};
  /** Settles once the connection is gone. */
  readonly closed: Promise<unknown>;

  private constructor(private readonly socket: net.Socket) {
    this.closed = once(socket, "close");
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake();
    });
    socket.on("close", () => this.wake());
    socket.on("error", () => {});
  }

  static async open(origin: string): Promise<RawConnection> {
    const { hostname, port } = new URL(origin);
    const socket = net.connect(Number(port), hostname);
    await once(socket, "connect");
    return new RawConnection(socket);
  }

  /** Sends a request's head, then `body` if given. */
  async send(request: string, headers: Record<string, string>, body?: Readable) {
    const lines = Object.entries({ host: "envd", ...headers }).map(([k, v]) => `${k}: ${v}\r\n`);
    this.socket.write(`${request} HTTP/1.1\r\n${lines.join("")}\r\n`);
    if (body) await pipeline(body, this.socket, { end: false });
  }

  /** The next answer (one with a content-length). */
  async answer(): Promise<{ status: number; body: string }> {
    for (;;) {
      const end = this.buffered.indexOf("\r\n\r\n");
      const head = end < 0 ? "" : this.buffered.subarray(0, end).toString("latin1");
      const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (end >= 0 && this.buffered.length >= end + 4 + length) {
        const body = this.buffered.subarray(end + 4, end + 4 + length).toString("utf8");
        this.buffered = this.buffered.subarray(end + 4 + length);
        return { status: Number(head.split(" ")[1]), body };
      }
      if (this.socket.destroyed) throw new Error("envd closed the connection before answering");
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  close(): void {
    this.socket.destroy();
  }
}

describe("envd answering an upload before reading all of it", { timeout: 120_000 }, () => {
  let envd: RunningEnvd;
  let dir: string;
  let full: string;
  let mounted = false;
  /** envd's upload URL for `path`, as root; without the origin when `relative`. */
  const url = (path: string, relative = false) =>
    `${relative ? "" : envd.baseUrl}/files?${new URLSearchParams({ path, username: "root" })}`;

  beforeAll(async () => {
    envd = await startEnvd();
    dir = await mkdtemp(join(tmpdir(), "wrenn-envd-early-"));
    await writeFile(join(dir, "a-file"), "x");
    full = join(dir, "full");
    await mkdir(full);
    await run("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", full]);
    mounted = true;
  });
  afterAll(async () => {
    await envd?.stop();
    if (mounted) await run("umount", [full]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each(kinds)("a refused upload gets its error, never a reset: %s", async (kind) => {
    for (let round = 0; round < 5; round++) {
      // Under a regular file: refused before a byte of the body is read.
      const answer = await send(url(join(dir, "a-file", "x.bin")), kind, 16 * MiB);
      expect(answer.status).toBe(412);
      expect(answer.json).toMatchObject({ code: "failed_precondition" });
      expect(answer.json.message).toMatch(/not a directory/);
    }
  });

  it("a refused upload over HTTP/2 gets its error, and the connection serves on", async () => {
    const session = http2.connect(envd.baseUrl);
    try {
      for (let round = 0; round < 3; round++) {
        const { body, headers } = uploadBody("octet-stream", 16 * MiB);
        const stream = session.request({
          ":method": "POST",
          ":path": url(join(dir, "a-file", "x.bin"), true),
          ...headers,
        });
        const sent = pipeline(body, stream).catch(() => {});
        const [head] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        await sent;
        stream.close();
        expect(head[":status"]).toBe(412);
        expect(JSON.parse(Buffer.concat(chunks).toString("utf8"))).toMatchObject({
          code: "failed_precondition",
        });
      }
      const health = session.request({ ":path": "/health" });
      const [head] = (await once(health, "response")) as [http2.IncomingHttpHeaders];
      health.resume();
      expect(head[":status"]).toBe(204);
    } finally {
      session.close();
    }
  });

  it.each(kinds)("a disk filling mid-body is answered 507 and keeps nothing: %s", async (kind) => {
    const answer = await send(url(join(full, "big.bin")), kind, 16 * MiB);
    expect(answer.status).toBe(507);
    expect(answer.json).toMatchObject({ code: "insufficient_storage" });
    expect(answer.json.message).toMatch(/no space/i);
    expect(await readdir(full)).toEqual([]);
    // The space the failed upload took is back.
    expect((await send(url(join(full, "small.bin")), kind, MiB)).status).toBe(200);
    await rm(join(full, "small.bin"));
  });

  it("reads and drops the rest for a client that sends it all, and keeps the connection", async () => {
    const connection = await RawConnection.open(envd.baseUrl);
    try {
      for (const kind of kinds) {
        const { body, headers } = uploadBody(kind, 16 * MiB);
        await connection.send(`POST ${url(join(dir, "a-file", "x.bin"), true)}`, headers, body);
        const answer = await connection.answer();
        expect(answer.status).toBe(412);
        expect(JSON.parse(answer.body)).toMatchObject({ code: "failed_precondition" });
      }
      await connection.send("GET /health", {});
      expect((await connection.answer()).status).toBe(204);
    } finally {
      connection.close();
    }
  });

  it("cuts a client that goes on sending long after the answer", async () => {
    const connection = await RawConnection.open(envd.baseUrl);
    // Announces 1 GiB, then trickles 256 KiB every 50 ms: 200 s to send it all.
    const headers = { "content-type": "application/octet-stream", "content-length": `${1 << 30}` };
    await connection.send(`POST ${url(join(dir, "a-file", "x.bin"), true)}`, headers);
    const trickle = setInterval(() => connection.write(Buffer.alloc(256 * 1024)), 50);
    try {
      const answer = await connection.answer();
      expect(answer.status).toBe(412);
      const answeredAt = Date.now();
      await connection.closed;
      const cutAfter = Date.now() - answeredAt;
      console.log(`connection cut ${cutAfter} ms after the answer`);
      expect(cutAfter).toBeLessThan(30_000);
    } finally {
      clearInterval(trickle);
      connection.close();
    }
    expect((await fetch(`${envd.baseUrl}/health`)).status).toBe(204);
  });
});
