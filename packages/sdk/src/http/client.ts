import type { ConnectionOpts } from "../config/index.js";
import { requireConfig } from "../config/index.js";
import { ConnectionError, errorFromResponse, WrennError } from "../errors/index.js";
import { Deadline, type RequestOpts } from "./deadline.js";
import {
  backoffMs,
  DEFAULT_RETRY,
  isRetryableStatus,
  parseRetryAfter,
  type RetryPolicy,
  sleep,
} from "./retry.js";
import {
  type BodyLike,
  type FetchLike,
  isReplayable,
  platformFetch,
  type WireResponse,
} from "./transport.js";

/** Errors a caller's callback threw inside a `consume`: {@link ApiClient.send} passes them on. */
const fromCallbacks = new WeakSet<object>();

/**
 * Runs a caller's callback (an `onStdout`, an `onLog`) inside a `consume`: what it throws reaches
 * the caller as it is, not as a ConnectionError (it is their bug, not the network's, and no
 * retry should run the call again for it).
 */
export async function runCallback(callback: () => unknown): Promise<void> {
  try {
    await callback();
  } catch (err) {
    if (typeof err === "object" && err !== null) fromCallbacks.add(err);
    throw err;
  }
}

/** Query values; `undefined` ones are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

/** One HTTP call through {@link ApiClient}. */
export interface CallOptions extends RequestOpts {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  query?: Query;
  /** Sent as `application/json`. */
  json?: unknown;
  /** Sent as is (streamed when it is a stream); give `contentType`. */
  body?: BodyLike;
  contentType?: string;
  headers?: Record<string, string>;
  /** Safe to send twice; default true for GET/PUT/DELETE, false for POST. */
  idempotent?: boolean;
  /** Sent without `X-API-Key`: the call ends at a port inside a sandbox, where the key must not go. */
  withoutApiKey?: boolean;
  /** The call runs inside a sandbox: "not running"/"unavailable" become SandboxError. */
  inSandbox?: boolean;
  /** Applied when the caller gave no `timeoutMs`; default {@link ApiClient.defaultTimeoutMs}. */
  defaultTimeoutMs?: number;
}

/** Options of {@link ApiClient}. */
export interface ApiClientOptions {
  apiUrl: string;
  apiKey: string;
  /** Timeout of calls that give none (default 60 000 ms; 0 = none). */
  defaultTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Replaces the platform fetch (tests, custom agents). */
  fetch?: FetchLike;
}

/**
 * The low-level client every SDK object shares: authenticated requests with a deadline,
 * retries for idempotent calls (connection errors, 429, 5xx; jittered backoff honouring
 * `Retry-After`), and the server's `{code, message}` failures turned into typed errors.
 */
export class ApiClient {
  /** The server's base URL, without a trailing slash. */
  readonly apiUrl: string;
  /** The API key sent as `X-API-Key`. */
  readonly apiKey: string;
  /** Timeout of calls that give none. */
  readonly defaultTimeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly fetchOverride: FetchLike | undefined;

  constructor(options: ApiClientOptions) {
    this.apiUrl = options.apiUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 60_000;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.fetchOverride = options.fetch;
  }

  /** A client from explicit options, `WRENN_*` variables or the config file. */
  static async fromOptions(opts: ConnectionOpts = {}): Promise<ApiClient> {
    const config = await requireConfig(opts);
    return new ApiClient({ apiUrl: config.apiUrl, apiKey: config.apiKey });
  }

  /** The absolute URL of `path` with `query`. */
  url(path: string, query?: Query): string {
    const url = new URL(this.apiUrl + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url.toString();
  }

  /** Sends the call and parses a JSON answer (or `undefined` for 204). */
  async json<T>(call: CallOptions): Promise<T> {
    return this.send(call, async (res) =>
      res.status === 204 ? (undefined as T) : ((await res.json()) as T),
    );
  }

  /**
   * Sends the call and hands the successful response to `consume` while the deadline still
   * runs; once `consume` resolves the timer stops (so a returned stream is bounded only by the
   * caller's signal).
   */
  async send<T>(call: CallOptions, consume: (res: WireResponse) => Promise<T> | T): Promise<T> {
    const fetch = this.fetchOverride ?? (await platformFetch());
    const timeoutMs = call.timeoutMs ?? call.defaultTimeoutMs ?? this.defaultTimeoutMs;
    const deadline = new Deadline({ ...call, timeoutMs }, `${call.method} ${call.path}`);
    const body = call.json !== undefined ? JSON.stringify(call.json) : call.body;
    const idempotent = (call.idempotent ?? call.method !== "POST") && isReplayable(body);
    const streamed = body !== undefined && !isReplayable(body);
    const headers: Record<string, string> = {
      ...(call.withoutApiKey ? {} : { "x-api-key": this.apiKey }),
      accept: "application/json",
      ...(call.json !== undefined ? { "content-type": "application/json" } : {}),
      ...(call.contentType ? { "content-type": call.contentType } : {}),
      ...call.headers,
    };
    const url = this.url(call.path, call.query);
    let handedOn = false;
    try {
      for (let attempt = 0; ; attempt++) {
        let res: WireResponse;
        try {
          res = await fetch(url, {
            method: call.method,
            headers,
            body,
            signal: deadline.signal,
            ...(streamed ? { duplex: "half" as const } : {}),
          });
        } catch (err) {
          if (deadline.signal.aborted) throw deadline.signal.reason;
          if (idempotent && attempt < this.retry.maxRetries) {
            await sleep(backoffMs(this.retry, attempt), deadline.signal);
            continue;
          }
          throw new ConnectionError(`${call.method} ${url}: ${describe(err)}`, {
            code: "connection_failed",
            cause: err,
          });
        }
        if (res.ok) {
          const out = await consume(res);
          if (typeof ReadableStream === "undefined" || !(out instanceof ReadableStream)) return out;
          // A body handed to the caller stays under their signal until it ends.
          handedOn = true;
          return releasedAtEnd(out, () => deadline.release()) as T;
        }
        const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"));
        if (idempotent && isRetryableStatus(res.status) && attempt < this.retry.maxRetries) {
          await res.text().catch(() => {}); // drain, so the connection can be reused
          await sleep(backoffMs(this.retry, attempt, retryAfterMs), deadline.signal);
          continue;
        }
        throw await errorFromResponse(res, {
          ...(call.inSandbox ? { inSandbox: true } : {}),
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        });
      }
    } catch (err) {
      // An abort while reading a body surfaces as the signal's reason; keep that, typed.
      if (deadline.signal.aborted && !(err instanceof WrennError)) throw deadline.signal.reason;
      if (err instanceof WrennError || deadline.signal.aborted) throw err;
      if (typeof err === "object" && err !== null && fromCallbacks.has(err)) throw err;
      throw new ConnectionError(`${call.method} ${url}: ${describe(err)}`, {
        code: "connection_failed",
        cause: err,
      });
    } finally {
      if (handedOn) deadline.clear();
      else deadline.release();
    }
  }
}

/** `body` as is, calling `done` once it has ended, failed or been cancelled. */
function releasedAtEnd(
  body: ReadableStream<Uint8Array>,
  done: () => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { value, done: ended } = await reader.read();
          if (!ended) return controller.enqueue(value);
          done();
          controller.close();
        } catch (err) {
          done();
          throw err;
        }
      },
      cancel(reason) {
        done();
        return reader.cancel(reason);
      },
    },
    // Pulls only when the caller reads: no chunk is read ahead of them.
    { highWaterMark: 0 },
  );
}

/** The innermost message of a fetch failure ("fetch failed" alone says nothing). */
function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: string; code?: string; cause?: unknown } | undefined; e; ) {
    if (e.message) parts.push(e.code ? `${e.message} (${e.code})` : e.message);
    e = e.cause as typeof e;
    if (parts.length > 3) break;
  }
  return parts.join(": ") || String(err);
}
