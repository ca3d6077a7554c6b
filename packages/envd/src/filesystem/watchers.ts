import { randomUUID } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import type { FilesystemEvent } from "@wrenn/proto/filesystem";
import { EnvdError } from "../errors.js";
import { logger } from "../logger.js";
import { DirWatcher, type DirWatcherOptions, maxRawBacklog } from "./watch.js";

/** Events one watcher holds for a slow stream or between two GetWatcherEvents calls. */
const maxBufferedEvents = 10_000;
/** Polling watchers alive at once (each is forgotten only by RemoveWatcher or shutdown). */
const maxPollingWatchers = 1000;

/** Events of one watch, buffered until taken; a stream waits on `next()`. */
export class EventBuffer {
  private events: FilesystemEvent[] = [];
  private wake: (() => void) | undefined;
  /** Why events were lost, once some were. */
  overflowed: string | undefined;

  push(event: FilesystemEvent): void {
    if (this.events.length >= maxBufferedEvents) {
      this.overflow(`over ${maxBufferedEvents} events waiting: the client reads too slowly`);
      return;
    }
    this.events.push(event);
    this.wake?.();
  }

  overflow(reason: string): void {
    this.overflowed ??= reason;
    this.wake?.();
  }

  take(): FilesystemEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  /** Resolves when events are waiting, after `timeoutMs`, or when `signal` aborts. */
  wait(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.events.length > 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener("abort", done);
      this.wake = done;
    });
  }
}

interface Polling {
  watcher: DirWatcher;
  buffer: EventBuffer;
}

/** Every live watcher, stream-bound or polling, so shutdown can stop them all. */
export class Watchers {
  private readonly live = new Set<DirWatcher>();
  private readonly polling = new Map<string, Polling>();

  /** Watches `dir` (opened and checked as `opened`), its events and any overflow going to `buffer`. */
  async start(
    dir: string,
    opened: FileHandle,
    options: Omit<DirWatcherOptions, "onEvent" | "onOverflow">,
    buffer: EventBuffer,
  ): Promise<DirWatcher> {
    const watcher = await DirWatcher.start(dir, opened, {
      ...options,
      onEvent: (event) => buffer.push(event),
      onOverflow: () =>
        buffer.overflow(
          `the directory changes faster than envd can follow (over ${maxRawBacklog} changes waiting)`,
        ),
    });
    this.live.add(watcher);
    return watcher;
  }

  stop(watcher: DirWatcher): void {
    watcher.close();
    this.live.delete(watcher);
  }

  async createPolling(
    dir: string,
    opened: FileHandle,
    options: Omit<DirWatcherOptions, "onEvent" | "onOverflow">,
  ): Promise<string> {
    if (this.polling.size >= maxPollingWatchers) {
      throw new EnvdError(
        "resource_exhausted",
        `too many watchers (${maxPollingWatchers}); remove some first`,
      );
    }
    const buffer = new EventBuffer();
    const watcher = await this.start(dir, opened, options, buffer);
    const id = randomUUID();
    this.polling.set(id, { watcher, buffer });
    return id;
  }

  drain(id: string): FilesystemEvent[] {
    const polling = this.polling.get(id);
    if (!polling) throw new EnvdError("not_found", `no watcher ${id}`);
    if (polling.buffer.overflowed) {
      logger.warn({ id, reason: polling.buffer.overflowed }, "watcher lost events");
      polling.buffer.overflowed = undefined;
    }
    return polling.buffer.take();
  }

  remove(id: string): void {
    const polling = this.polling.get(id);
    if (!polling) throw new EnvdError("not_found", `no watcher ${id}`);
    this.polling.delete(id);
    this.stop(polling.watcher);
  }

  close(): void {
    for (const watcher of this.live) watcher.close();
    this.live.clear();
    this.polling.clear();
  }
}
