/** A request body the transport can send as is. */
export type BodyLike =
  | string
  | Uint8Array
  | ArrayBuffer
  | Blob
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>;

/** The subset of `RequestInit` the SDK uses, plus `duplex` (a platform fetch streaming a body). */
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
 * Under Node, Node's own HTTP client dressed as fetch (node-transport.ts): part of Node, so a new
 * process has it at once (undici, the SDK's client before it, took 150-265 ms to load and compile
 * its parser: a script's first call) for 0.1-0.2 ms more per call. Elsewhere (browsers, Deno,
 * Bun, edge runtimes) the platform's `fetch`.
 */
export function platformFetch(): Promise<FetchLike> {
  resolved ??= (async () => {
    const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions
      ?.node;
    if (typeof node === "string" && !("Bun" in globalThis) && !("Deno" in globalThis))
      // Mapped to nothing for browsers (package.json's "browser").
      return (await import("./node-transport.js")).nodeFetch();
    return globalThis.fetch.bind(globalThis) as unknown as FetchLike;
  })();
  return resolved;
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
