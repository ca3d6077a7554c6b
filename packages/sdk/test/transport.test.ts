import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FetchLike, platformFetch } from "../src/http/index.js";

// The SDK's transport under Node (Node's HTTP client dressed as fetch) against a plain node:http
// server on loopback: how bodies go out and come back. The server is only the other end.

const KiB = 1024;
const MiB = 1024 * KiB;
/** What one read of a Node socket yields at most. */
const SOCKET_READ = 64 * KiB;

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A server answering every request with `respond`; resolves with its URL. */
async function serve(
  respond: (res: ServerResponse, req: IncomingMessage) => void,
): Promise<string> {
  server = createServer((req, res) => respond(res, req));
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

/** Byte i of a body is i mod 251: any byte lost, repeated or reordered shows. */
function pattern(offset: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (offset + i) % 251;
  return out;
}

/** Writes `total` bytes of the pattern, 16 KiB at a time, waiting for drain; counts what it wrote. */
function writePattern(res: ServerResponse, total: number, written: { bytes: number }) {
  res.writeHead(200, { "content-type": "application/octet-stream" });
  const step = () => {
    while (written.bytes < total) {
      const chunk = pattern(written.bytes, Math.min(16 * KiB, total - written.bytes));
      written.bytes += chunk.length;
      if (!res.write(chunk)) return void res.once("drain", step);
    }
    res.end();
  };
  step();
}

describe("the SDK's transport under Node", () => {
  let fetch: FetchLike;

  beforeAll(async () => {
    fetch = await platformFetch();
  });

  async function get(url: string, signal = new AbortController().signal) {
    return fetch(url, { method: "GET", headers: {}, signal });
  }

  /** Counts what a source handed over and whether it was closed (returned) before its end. */
  function source(total: number) {
    const state = { handed: 0, closed: false };
    async function* chunks() {
      try {
        while (state.handed < total) {
          const chunk = pattern(state.handed, Math.min(MiB, total - state.handed));
          state.handed += chunk.length;
          yield chunk;
        }
      } finally {
        state.closed = state.handed < total;
      }
    }
    return { state, chunks: chunks() };
  }

  describe("response bodies", () => {
    it("a slow reader gets the chunks as the socket gave them (never joined into copies), every byte in order", async () => {
      const total = 8 * MiB;
      const url = await serve((res) => writePattern(res, total, { bytes: 0 }));
      const res = await get(url);
      let offset = 0;
      let largest = 0;
      for await (const chunk of res.body! as unknown as AsyncIterable<Uint8Array>) {
        expect(Buffer.from(chunk).equals(pattern(offset, chunk.byteLength))).toBe(true);
        offset += chunk.byteLength;
        largest = Math.max(largest, chunk.byteLength);
        // Behind the socket: chunks pile up in the body meanwhile.
        await sleep(2);
      }
      expect(offset).toBe(total);
      expect(largest).toBeLessThanOrEqual(SOCKET_READ);
    });

    it("a reader that stops reading stops the sender (the body pauses)", async () => {
      const total = 256 * MiB;
      const written = { bytes: 0 };
      const url = await serve((res) => writePattern(res, total, written));
      const res = await get(url);
      const reader = res.body!.getReader();
      await reader.read();
      await sleep(500);
      const stalledAt = written.bytes;
      await sleep(200);
      // Loopback's socket buffers and the stream's read-ahead (a MiB) are all that may be in flight.
      expect(written.bytes).toBe(stalledAt);
      expect(stalledAt).toBeLessThan(32 * MiB);
      const rest = await reader.read();
      expect(rest.done).toBe(false);
      await reader.cancel();
    });

    it("a body cut off before its end fails the reader, and an abort fails it with the abort's reason", async () => {
      const url = await serve((res, req) => {
        if (req.url === "/endless")
          return writePattern(res, Number.POSITIVE_INFINITY, { bytes: 0 });
        res.writeHead(200, { "content-length": String(4 * MiB) });
        res.write(pattern(0, 256 * KiB), () => res.socket?.destroy());
      });
      const cut = await get(`${url}cut`);
      const drain = async (body: ReadableStream<Uint8Array>) => {
        for await (const _ of body as unknown as AsyncIterable<Uint8Array>);
      };
      await expect(drain(cut.body!)).rejects.toThrow();

      const controller = new AbortController();
      const reason = new Error("caller left");
      const aborted = await get(`${url}endless`, controller.signal);
      const reader = aborted.body!.getReader();
      await reader.read();
      controller.abort(reason);
      await expect(
        (async () => {
          for (;;) if ((await reader.read()).done) return;
        })(),
      ).rejects.toBe(reason);
    });

    it("an abort of a body nobody reads frees its connection (the server sees it close), no error escaping", async () => {
      let closed!: Promise<void>;
      const url = await serve((res) => {
        closed = new Promise((resolve) => res.once("close", () => resolve()));
        writePattern(res, Number.POSITIVE_INFINITY, { bytes: 0 });
      });
      const unread = new AbortController();
      await get(url, unread.signal);
      unread.abort(new Error("caller left"));
      // Left paused instead, the connection would stay open, the server stalled on it for good.
      await closed;
      // An error escaping to the process would fail the run (vitest reports unhandled errors).
      await sleep(50);
    });

    it("a HEAD answer and a 204 have a null body; repeated headers are joined", async () => {
      const url = await serve((res, req) => {
        if (req.method === "HEAD") {
          res.writeHead(200, { "content-length": String(4 * MiB), "x-repeated": ["a", "b"] });
          return res.end();
        }
        res.writeHead(204).end();
      });
      const head = await fetch(url, {
        method: "HEAD",
        headers: {},
        signal: new AbortController().signal,
      });
      expect(head.status).toBe(200);
      expect(head.body).toBeNull();
      expect(head.headers.get("Content-Length")).toBe(String(4 * MiB));
      expect(head.headers.get("x-repeated")).toBe("a, b");
      const empty = await get(url);
      expect(empty.status).toBe(204);
      expect(empty.body).toBeNull();
    });

    it("reads a whole body as bytes, text or JSON; one cut off before its end rejects", async () => {
      const total = 32 * MiB;
      const url = await serve((res, req) => {
        if (req.url === "/json") return res.end('{"a":[1,2]}');
        if (req.url === "/cut") {
          res.writeHead(200, { "content-length": String(total) });
          return res.write(pattern(0, 256 * KiB), () => res.socket?.destroy());
        }
        writePattern(res, total, { bytes: 0 });
      });
      const bytes = new Uint8Array(await (await get(url)).arrayBuffer());
      expect(bytes.byteLength).toBe(total);
      expect(Buffer.from(bytes).equals(pattern(0, total))).toBe(true);
      expect(await (await get(`${url}json`)).json()).toEqual({ a: [1, 2] });
      expect(await (await get(`${url}json`)).text()).toBe('{"a":[1,2]}');
      await expect((await get(`${url}cut`)).arrayBuffer()).rejects.toThrow();
      await expect((await get(`${url}cut`)).text()).rejects.toThrow();
    });
  });

  describe("request bodies", () => {
    it("streams a body no faster than the server reads it, every byte in order", async () => {
      const total = 256 * MiB;
      let read = 0;
      let reading!: IncomingMessage;
      const url = await serve((res, req) => {
        reading = req;
        req.pause();
        req.on("data", (chunk: Buffer) => {
          if (!chunk.equals(pattern(read, chunk.length))) res.destroy();
          read += chunk.length;
        });
        req.on("end", () => res.end(String(read)));
      });
      const { state, chunks } = source(total);
      const answer = fetch(url, {
        method: "POST",
        headers: {},
        body: chunks,
        signal: new AbortController().signal,
      });
      await sleep(500);
      // The server has read nothing: loopback's socket buffers and a chunk or two are in flight.
      expect(read).toBe(0);
      expect(state.handed).toBeLessThan(32 * MiB);
      reading.resume();
      const res = await answer;
      expect(await res.text()).toBe(String(total));
      expect(state.handed).toBe(total);
    });

    it("a failed request closes the body's source; an abort before the answer rejects with its reason", async () => {
      const url = await serve((res, req) => {
        if (req.url === "/silent") return;
        req.once("data", () => res.socket?.destroy());
      });
      const { state, chunks } = source(64 * MiB);
      const signal = new AbortController().signal;
      await expect(
        fetch(`${url}cut`, { method: "POST", headers: {}, body: chunks, signal }),
      ).rejects.toThrow();
      // The source was returned before its end, not left suspended.
      await sleep(50);
      expect(state.closed).toBe(true);

      const controller = new AbortController();
      const reason = new Error("caller left");
      const pending = fetch(`${url}silent`, {
        method: "GET",
        headers: {},
        signal: controller.signal,
      });
      await sleep(100);
      controller.abort(reason);
      await expect(pending).rejects.toBe(reason);
    });
  });
});
