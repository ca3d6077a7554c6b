// The answers of the Node transports (undici's and node:http's) as the SDK's WireResponse, their
// bodies (Node readables) as web streams.
import type { WireResponse } from "./transport.js";

/** Statuses whose responses have no body. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** The part of a Node response body (undici's or node:http's, both readables) the web stream uses. */
export interface NodeBody {
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  once(event: "end" | "close", listener: () => void): unknown;
  once(event: "error", listener: (err: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  destroy(err?: Error): void;
}

/** An answer as a Node transport received it: status, headers (arrays for repeated ones), body. */
export interface NodeAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: NodeBody;
}

/** How the transport reads a whole body (each client has its own fast way). */
export type WholeBody = Pick<WireResponse, "json" | "text" | "arrayBuffer">;

/**
 * The WireResponse of a Node answer. An abort of the request's signal after the headers ends the
 * body with the abort's reason, as fetch does; a bodiless answer (HEAD, 204, ...) is drained at
 * once so its socket goes back to the pool, and its `body` is null. The web stream is made only
 * if asked for: JSON and text are read straight from the Node body.
 */
export function toWireResponse(
  answer: NodeAnswer,
  request: { method: string; signal: AbortSignal },
  whole: WholeBody,
): WireResponse {
  const { status, headers, body } = answer;
  const onAbort = () => body.destroy(request.signal.reason);
  request.signal.addEventListener("abort", onAbort, { once: true });
  body.once("close", () => request.signal.removeEventListener("abort", onAbort));
  const bodiless = NULL_BODY.has(status) || request.method === "HEAD";
  if (bodiless) body.resume();
  let web: ReadableStream<Uint8Array> | null | undefined;
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: {
      get(name) {
        const value = headers[name.toLowerCase()];
        return value === undefined ? null : [value].flat().join(", ");
      },
    },
    get body() {
      web ??= bodiless ? null : toWebStream(body);
      return web;
    },
    ...whole,
  };
}

/**
 * A web stream over a Node body: chunks as the socket gave them, one read ahead (the body pauses
 * while the reader is behind), errors (an abort's reason) passed on. Not through the body's
 * async iterator: each of its reads joins every chunk buffered meanwhile into a new buffer, a
 * copy of the bytes (and fresh pages to fault in) whenever the reader is slower than the socket.
 */
function toWebStream(body: NodeBody): ReadableStream<Uint8Array> {
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
