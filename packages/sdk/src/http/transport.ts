import { toWireResponse } from "./node-response.js";

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
 * per call; with `WRENN_HTTP_CLIENT=node`, Node's own client (node-transport.ts), which a new
 * process has ready at once where undici takes 150-265 ms to load and compile its parser: the
 * choice of short-lived processes (the `wrenn` command sets it). Everywhere else (browsers, Deno,
 * Bun, edge runtimes) the platform's `fetch`.
 */
export function platformFetch(): Promise<FetchLike> {
  resolved ??= (async () => {
    const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions
      ?.node;
    if (typeof node === "string" && !("Bun" in globalThis) && !("Deno" in globalThis)) {
      const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process
        ?.env;
      // Mapped to nothing for browsers (package.json's "browser"), as undici is.
      if (env?.WRENN_HTTP_CLIENT === "node")
        return (await import("./node-transport.js")).nodeFetch();
      return undiciFetch(await import("undici"));
    }
    return globalThis.fetch.bind(globalThis) as unknown as FetchLike;
  })();
  return resolved;
}

type Undici = typeof import("undici");
/** undici's request options; its `body` also takes any async iterable of bytes (typed as Readable). */
type RequestOptions = NonNullable<Parameters<Undici["request"]>[1]>;

function undiciFetch(undici: Undici): FetchLike {
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
              ? body.stream()
              : body,
    } as RequestOptions);
    const read = res.body;
    return toWireResponse({ status: res.statusCode, headers: res.headers, body: read }, init, {
      json: () => read.json(),
      text: () => read.text(),
      arrayBuffer: () => read.arrayBuffer(),
    });
  };
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
