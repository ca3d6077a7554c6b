import { ConflictError, errorFromWire, NotFoundError, SandboxError } from "../errors/index.js";
import { type ApiClient, type BodyLike, type RequestOpts, requestOpts } from "../http/index.js";
import { Paginator } from "../pagination/index.js";
import { parseEventStream } from "./sse.js";
import {
  type EntryInfo,
  entryFromWire,
  type FilesystemEvent,
  type WatchHandle,
  type WireEntry,
  type WriteData,
  type WriteInfo,
} from "./types.js";

/** Options of {@link Files.read}. */
export interface ReadOpts extends RequestOpts {
  /** `text` (default, UTF-8), `bytes` or `stream` (bytes as they arrive). */
  format?: "text" | "bytes" | "stream";
  /** Read as this sandbox user (default `user`). */
  user?: string;
}

/** Options of {@link Files.write}. */
export interface WriteOpts extends RequestOpts {
  /** Write as this sandbox user (default `user`); the file is owned by them. */
  user?: string;
}

/** Options of {@link Files.watchDir}. */
export interface WatchOpts extends RequestOpts {
  /** Watch subdirectories too. */
  recursive?: boolean;
  /** Called once when the watch ends on its own (`err` set when it failed), not after `stop()`. */
  onExit?: (err?: Error) => void;
}

/** Files written at once by {@link Files.write} with an array. */
const PARALLEL_WRITES = 4;

const encoder = new TextEncoder();

/** Bytes of any async iterable, strings as UTF-8 (Node readables may yield strings). */
async function* asBytes(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) yield typeof chunk === "string" ? encoder.encode(chunk) : chunk;
}

function toBody(data: WriteData): BodyLike {
  if (
    typeof data === "string" ||
    data instanceof Uint8Array ||
    data instanceof ArrayBuffer ||
    (typeof Blob !== "undefined" && data instanceof Blob) ||
    (typeof ReadableStream !== "undefined" && data instanceof ReadableStream)
  ) {
    return data as BodyLike;
  }
  return asBytes(data as AsyncIterable<Uint8Array | string>);
}

/** The filesystem of one sandbox: `sandbox.files`. */
export class Files {
  /** @internal */
  constructor(
    private readonly client: ApiClient,
    private readonly sandboxId: string,
  ) {}

  private get base() {
    return `/v1/sandboxes/${encodeURIComponent(this.sandboxId)}/files`;
  }

  /** Reads a file as UTF-8 text. */
  read(path: string, opts?: ReadOpts & { format?: "text" }): Promise<string>;
  /** Reads a file's bytes. */
  read(path: string, opts: ReadOpts & { format: "bytes" }): Promise<Uint8Array>;
  /** Streams a file: bytes as they arrive; `opts.signal` cancels the stream. */
  read(path: string, opts: ReadOpts & { format: "stream" }): Promise<ReadableStream<Uint8Array>>;
  async read(
    path: string,
    opts: ReadOpts = {},
  ): Promise<string | Uint8Array | ReadableStream<Uint8Array>> {
    const format = opts.format ?? "text";
    return this.client.send(
      {
        method: "GET",
        path: this.base,
        query: { path, user: opts.user },
        inSandbox: true,
        defaultTimeoutMs: 0,
        ...requestOpts(opts),
      },
      async (res) => {
        if (format === "text") return res.text();
        if (format === "bytes") return new Uint8Array(await res.arrayBuffer());
        if (!res.body) return new ReadableStream<Uint8Array>({ start: (c) => c.close() });
        return res.body as ReadableStream<Uint8Array>;
      },
    );
  }

  /** Writes one file (parents are made); streams are sent as they are read. */
  write(path: string, data: WriteData, opts?: WriteOpts): Promise<WriteInfo>;
  /** Writes several files, a few at a time; after a failure no further file is started. */
  write(files: { path: string; data: WriteData }[], opts?: WriteOpts): Promise<WriteInfo[]>;
  async write(
    pathOrFiles: string | { path: string; data: WriteData }[],
    dataOrOpts?: WriteData | WriteOpts,
    maybeOpts?: WriteOpts,
  ): Promise<WriteInfo | WriteInfo[]> {
    if (typeof pathOrFiles === "string") {
      return this.writeOne(pathOrFiles, dataOrOpts as WriteData, maybeOpts ?? {});
    }
    const opts = (dataOrOpts as WriteOpts | undefined) ?? {};
    const results: WriteInfo[] = new Array(pathOrFiles.length);
    let next = 0;
    // The call fails with the first failure: the other workers must not go on writing after it.
    let failed = false;
    const worker = async () => {
      while (!failed && next < pathOrFiles.length) {
        const index = next++;
        const file = pathOrFiles[index] as { path: string; data: WriteData };
        try {
          results[index] = await this.writeOne(file.path, file.data, opts);
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(PARALLEL_WRITES, pathOrFiles.length) }, worker),
    );
    return results;
  }

  private async writeOne(path: string, data: WriteData, opts: WriteOpts): Promise<WriteInfo> {
    const answer = await this.client.json<{ files: WriteInfo[] }>({
      method: "PUT",
      path: this.base,
      query: { path, user: opts.user },
      body: toBody(data),
      contentType: "application/octet-stream",
      inSandbox: true,
      defaultTimeoutMs: 0,
      ...requestOpts(opts),
    });
    const written = answer.files[0];
    if (!written) throw new SandboxError(`writing ${path}: the sandbox reported no file`);
    return written;
  }

  /** Lists a directory, `depth` levels deep (default 1): every entry, in path order. */
  async list(path: string, opts: RequestOpts & { depth?: number } = {}): Promise<EntryInfo[]> {
    return this.listPages(path, opts).toArray();
  }

  /**
   * The same listing page by page, `limit` entries a request (default and most: 1000): for
   * trees too large to hold at once, iterate it with `for await`.
   */
  listPages(
    path: string,
    opts: RequestOpts & { depth?: number; limit?: number } = {},
  ): Paginator<EntryInfo> {
    return new Paginator(async (cursor) => {
      const answer = await this.client.json<{ entries: WireEntry[]; next_cursor?: string | null }>({
        method: "GET",
        path: `${this.base}/list`,
        query: { path, depth: opts.depth, limit: opts.limit, cursor },
        inSandbox: true,
        ...requestOpts(opts),
      });
      return {
        items: answer.entries.map(entryFromWire),
        nextCursor: answer.next_cursor ?? undefined,
      };
    });
  }

  /** Describes one path; {@link NotFoundError} when it does not exist. */
  async getInfo(path: string, opts: RequestOpts = {}): Promise<EntryInfo> {
    return entryFromWire(
      await this.client.json<WireEntry>({
        method: "GET",
        path: `${this.base}/stat`,
        query: { path },
        inSandbox: true,
        ...requestOpts(opts),
      }),
    );
  }

  /** True when the path exists. */
  async exists(path: string, opts: RequestOpts = {}): Promise<boolean> {
    try {
      await this.getInfo(path, opts);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  /** Makes a directory and its parents; false when it already existed. */
  async makeDir(path: string, opts: RequestOpts = {}): Promise<boolean> {
    try {
      await this.client.json({
        method: "POST",
        path: `${this.base}/mkdir`,
        json: { path },
        // Making a directory twice ends the same way (already_exists is answered as false).
        idempotent: true,
        inSandbox: true,
        ...requestOpts(opts),
      });
      return true;
    } catch (err) {
      if (err instanceof ConflictError && err.code === "already_exists") return false;
      throw err;
    }
  }

  /** Removes a file or a directory with everything in it. */
  async remove(path: string, opts: RequestOpts = {}): Promise<void> {
    await this.client.json({
      method: "DELETE",
      path: this.base,
      query: { path },
      inSandbox: true,
      ...requestOpts(opts),
    });
  }

  /** Moves or renames; returns the entry at its new path. */
  async rename(from: string, to: string, opts: RequestOpts = {}): Promise<EntryInfo> {
    return entryFromWire(
      await this.client.json<WireEntry>({
        method: "POST",
        path: `${this.base}/move`,
        json: { source: from, destination: to },
        inSandbox: true,
        ...requestOpts(opts),
      }),
    );
  }

  /**
   * Watches a directory; resolves once the watch is in place, so anything changed after that
   * is reported. `opts.signal` or the handle's `stop()` ends it.
   */
  async watchDir(
    path: string,
    onEvent: (event: FilesystemEvent) => void,
    opts: WatchOpts = {},
  ): Promise<WatchHandle> {
    const stopper = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, stopper.signal]) : stopper.signal;
    const body = await this.client.send(
      {
        method: "GET",
        path: `${this.base}/watch`,
        query: { path, recursive: opts.recursive ? "true" : undefined },
        headers: { accept: "text/event-stream" },
        inSandbox: true,
        signal,
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      },
      (res) => res.body as ReadableStream<Uint8Array>,
    );
    const events = parseEventStream(body);
    // Wait for `ready` (the server's watch is in place) before resolving.
    for (;;) {
      const first = await events.next().catch((err: unknown) => {
        throw signal.aborted ? signal.reason : err;
      });
      if (first.done)
        throw new SandboxError(`watching ${path}: the stream ended before it was ready`);
      if (first.value.event === "ready") break;
    }
    const finished = (async () => {
      try {
        for await (const e of events) {
          if (e.event === "fs") onEvent(JSON.parse(e.data) as FilesystemEvent);
          else if (e.event === "error") {
            const { code, message } = JSON.parse(e.data) as { code?: string; message?: string };
            throw errorFromWire({
              ...(code ? { code } : {}),
              ...(message ? { message } : {}),
              inSandbox: true,
            });
          }
        }
        if (!stopper.signal.aborted) opts.onExit?.();
      } catch (err) {
        if (!stopper.signal.aborted)
          opts.onExit?.(err instanceof Error ? err : new Error(String(err)));
      }
    })();
    return {
      async stop() {
        stopper.abort();
        await finished;
      },
    };
  }
}
