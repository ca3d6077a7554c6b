/** A request body the transport can send as is. */
export type BodyLike =
  | string
  | Uint8Array
  | ArrayBuffer
  | Blob
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>;

/** The subset of `RequestInit` the SDK uses, plus undici's streaming `duplex`. */
export interface FetchInit {
  method: string;
  headers: Record<string, string>;
  body?: BodyLike | undefined;
  signal: AbortSignal;
  duplex?: "half";
}

/** The part of a fetch `Response` the SDK reads (a web Response is one). */
export interface WireResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** The body as a web stream; null when there is none. */
  readonly body: ReadableStream<Uint8Array> | null;
  json(): Promise<unknown>;
  text(): Promise<string>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** `fetch` as the SDK calls it. */
export type FetchLike = (url: string, init: FetchInit) => Promise<WireResponse>;

let resolved: Promise<FetchLike> | undefined;

/**
 * Under Node, undici's `request` dressed as fetch: it streams request bodies with real
 * backpressure (undici's fetch was seen holding a whole slow upload in memory) and costs less
 * per call. Everywhere else (browsers, Deno, Bun, edge runtimes) the platform's `fetch`.
 */
export function platformFetch(): Promise<FetchLike> {
  resolved ??= (async () => {
    const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions
      ?.node;
    if (typeof node === "string" && !("Bun" in globalThis) && !("Deno" in globalThis)) {
      return nodeFetch(await import("undici"));
    }
    return globalThis.fetch.bind(globalThis) as unknown as FetchLike;
  })();
  return resolved;
}

/** Statuses whose responses have no body. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

type Undici = typeof import("undici");
/** undici's request options; its `body` also takes any async iterable of bytes (typed as Readable). */
type RequestOptions = NonNullable<Parameters<Undici["request"]>[1]>;

function nodeFetch(undici: Undici): FetchLike {
  return async (url, init) => {
    const body = init.body;
    const res = await undici.request(url, {
      method: init.method as "GET",
      headers: init.headers,
      signal: init.signal,
      body:
        body === undefined || typeof body === "string" || body instanceof Uint8Array
          ? body
          : body instanceof ArrayBuffer
            ? new Uint8Array(body)
            : typeof Blob !== "undefined" && body instanceof Blob
              ? iterate(body.stream())
              : typeof ReadableStream !== "undefined" && body instanceof ReadableStream
                ? iterate(body)
                : body,
    } as RequestOptions);
    // A caller's abort after the headers ends the body with the abort's reason, as fetch does.
    const onAbort = () => res.body.destroy(init.signal.reason);
    init.signal.addEventListener("abort", onAbort, { once: true });
    res.body.once("close", () => init.signal.removeEventListener("abort", onAbort));
    const nullBody = NULL_BODY.has(res.statusCode);
    if (nullBody) res.body.resume();
    // JSON and text are read straight from undici's body; a web stream is made only if asked for.
    let web: ReadableStream<Uint8Array> | null | undefined;
    return {
      status: res.statusCode,
      ok: res.statusCode >= 200 && res.statusCode < 300,
      headers: {
        get(name) {
          const value = res.headers[name.toLowerCase()];
          return value === undefined ? null : [value].flat().join(", ");
        },
      },
      get body() {
        web ??= nullBody ? null : toWebStream(res.body);
        return web;
      },
      json: () => res.body.json(),
      text: () => res.body.text(),
      arrayBuffer: () => res.body.arrayBuffer(),
    };
  };
}

/** The part of undici's response body (a Node readable) the web stream below uses. */
interface NodeBody {
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
function toWebStream(body: NodeBody) {
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

async function* iterate(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** True for bodies that can be sent again on a retry (nothing was consumed). */
export function isReplayable(body: BodyLike | undefined): boolean {
  return (
    body === undefined ||
    typeof body === "string" ||
    body instanceof Uint8Array ||
    body instanceof ArrayBuffer ||
    (typeof Blob !== "undefined" && body instanceof Blob)
  );
}
