import { createClient } from "@connectrpc/connect";
import { EventType, Filesystem, type WatchDirResponse } from "@wrenn/proto/filesystem";
import type { Logger } from "pino";
import { ServerError } from "../errors.js";
import { envdTransport } from "../hosts/envd-transport.js";
import { fromAgentError, fromBrokenStream } from "./agent-errors.js";
import type { SandboxService } from "./sandboxes.js";

export type FsEventType = "create" | "write" | "remove" | "rename" | "chmod";

export interface FsEvent {
  type: FsEventType;
  /** Relative to the watched directory. */
  name: string;
}

const eventTypes: Partial<Record<EventType, FsEventType>> = {
  [EventType.CREATE]: "create",
  [EventType.WRITE]: "write",
  [EventType.REMOVE]: "remove",
  [EventType.RENAME]: "rename",
  [EventType.CHMOD]: "chmod",
};

/** A directory watch in place in a sandbox: iterate its events once; `close` ends it in envd. */
export interface DirWatch extends AsyncIterable<FsEvent> {
  close(): void;
}

/** Directory watches in a team's running sandbox, through envd's Filesystem.WatchDir stream. */
export class WatchService {
  constructor(
    private readonly sandboxes: SandboxService,
    private readonly logger: Logger,
  ) {}

  /**
   * Resolves once envd's watch is in place, so what the caller changes afterwards is seen; a
   * missing directory fails here (not_found; not a directory: invalid_argument).
   */
  async watch(
    teamId: string,
    id: string,
    input: { path: string; recursive: boolean },
  ): Promise<DirWatch> {
    const host = await this.sandboxes.reachable(teamId, id);
    const fs = createClient(Filesystem, envdTransport(host, id));
    const abort = new AbortController();
    const iterator = fs
      .watchDir({ path: input.path, recursive: input.recursive }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    try {
      let first: IteratorResult<WatchDirResponse>;
      do first = await iterator.next();
      while (!first.done && first.value.event.case === "keepalive");
      if (first.done || first.value.event.case !== "start")
        throw new ServerError("unavailable", "watch: envd ended the stream before the start");
    } catch (err) {
      abort.abort();
      // "Not a directory" is the caller's wrong path: invalid_argument, as envd now says too (an
      // envd still running from an older release says failed_precondition).
      const failed = fromAgentError(err, "watch");
      throw failed.code === "failed_precondition"
        ? new ServerError("invalid_argument", failed.message, { cause: err })
        : failed;
    }
    const started = performance.now();
    const log = this.logger;
    return {
      close: () => abort.abort(),
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            const next = await iterator.next();
            if (next.done) break;
            const { event } = next.value;
            if (event.case !== "filesystem") continue;
            const type = eventTypes[event.value.type];
            if (type) yield { type, name: event.value.name };
          }
        } catch (err) {
          if (!abort.signal.aborted) throw fromBrokenStream(err, "watch");
        } finally {
          abort.abort();
          log.debug(
            { op: "files.watch", sandboxId: id, path: input.path, ms: performance.now() - started },
            "watch ended",
          );
        }
        if (!abort.signal.aborted)
          throw new ServerError("unavailable", "watch: envd ended the stream");
      },
    };
  }
}
