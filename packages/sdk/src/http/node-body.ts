// Response bodies of the Node transports (undici's and node:http's readables) as web streams.

/** Statuses whose responses have no body. */
export const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** The part of a Node response body (undici's or node:http's, both readables) the web stream uses. */
export interface NodeBody {
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  once(event: "end" | "close", listener: () => void): unknown;
  once(event: "error", listener: (err: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  destroy(err?: Error): void;
}

/**
 * A web stream over a Node body: chunks as the socket gave them, one read ahead (the body pauses
 * while the reader is behind), errors (an abort's reason) passed on. Not through the body's
 * async iterator: each of its reads joins every chunk buffered meanwhile into a new buffer, a
 * copy of the bytes (and fresh pages to fault in) whenever the reader is slower than the socket.
 */
export function toWebStream(body: NodeBody): ReadableStream<Uint8Array> {
  let settled = false;
  return new ReadableStream<Uint8Array>({
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
  });
}
