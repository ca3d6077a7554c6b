// An answer of Node's HTTP client (node-transport.ts) as the SDK's WireResponse, its body (a Node
// readable) as a web stream.
import type { IncomingMessage } from "node:http";
import type { WireResponse } from "./transport.js";

/** Statuses whose responses have no body. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * The WireResponse of an answer. An abort of the request's signal after the headers ends the body
 * with the abort's reason, as fetch does; a bodiless answer (HEAD, 204, ...) is drained at once so
 * its socket goes back to the pool, and its `body` is null. The web stream is made only if asked
 * for: JSON and text are read straight from the Node body.
 */
export function toWireResponse(
  res: IncomingMessage,
  request: { method: string; signal: AbortSignal },
): WireResponse {
  const status = res.statusCode ?? 0;
  const onAbort = () => res.destroy(request.signal.reason);
  request.signal.addEventListener("abort", onAbort, { once: true });
  res.once("close", () => request.signal.removeEventListener("abort", onAbort));
  const bodiless = NULL_BODY.has(status) || request.method === "HEAD";
  if (bodiless) res.resume();
  let web: ReadableStream<Uint8Array> | null | undefined;
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: {
      get(name) {
        const value = res.headers[name.toLowerCase()];
        return value === undefined ? null : [value].flat().join(", ");
      },
    },
    get body() {
      web ??= bodiless ? null : toWebStream(res);
      return web;
    },
    json: async () => JSON.parse((await collect(res)).toString("utf8")),
    text: async () => (await collect(res)).toString("utf8"),
    arrayBuffer: async () => ownBuffer(await collect(res)),
  };
}

/**
 * The whole body, copied once: chunks as they came (not through the body's async iterator, which
 * joins whatever is buffered) joined at the end. Rejects when the body is cut off or aborted.
 */
function collect(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (res.destroyed) return reject(res.errored ?? new Error("the response body was closed"));
    const chunks: Buffer[] = [];
    res.on("data", (chunk: Buffer) => chunks.push(chunk));
    res.once("end", () => resolve(Buffer.concat(chunks)));
    res.once("error", reject);
    res.once("close", () => reject(new Error("the response body ended before its end")));
  });
}

/** The bytes as an ArrayBuffer: a large Buffer has one of its own; a small one shares Node's pool. */
function ownBuffer(bytes: Buffer): ArrayBuffer {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  return (
    whole ? bytes.buffer : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  ) as ArrayBuffer;
}

/**
 * Bytes a body's web stream holds before the body pauses. With one chunk the socket was stopped
 * and started again for every 64 KiB a reader took.
 */
const READ_AHEAD_BYTES = 1024 * 1024;

/**
 * A web stream over a Node body: chunks as the socket gave them, up to READ_AHEAD_BYTES read
 * ahead (then the body pauses while the reader is behind), errors (an abort's reason) passed on.
 * Not through the body's async iterator: each of its reads joins every chunk buffered meanwhile
 * into a new buffer, a copy of the bytes (and fresh pages to fault in) whenever the reader is
 * slower than the socket.
 */
function toWebStream(body: IncomingMessage): ReadableStream<Uint8Array> {
  let settled = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const settle = (end: () => void) => {
          if (settled) return;
          settled = true;
          end();
        };
        body.on("data", (chunk) => {
          // A resume already under way can still hand over a chunk after a cancel.
          if (settled) return;
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) body.pause();
        });
        body.once("end", () => settle(() => controller.close()));
        body.once("error", (err) => settle(() => controller.error(err)));
        body.once("close", () =>
          settle(() => controller.error(new Error("the response body ended before its end"))),
        );
      },
      pull() {
        body.resume();
      },
      cancel(reason) {
        settled = true;
        body.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: READ_AHEAD_BYTES, size: (chunk) => chunk.byteLength },
  );
}
