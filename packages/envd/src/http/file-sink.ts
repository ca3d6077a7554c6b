import { writev, writevSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { Writable } from "node:stream";

/**
 * A write(2) that took longer than this means the kernel is holding writers back (dirty-page
 * throttling, reclaim, a frozen or slow disk): page-cache writes otherwise take microseconds.
 * It may also mean envd was only descheduled meanwhile (its cgroup's CPU quota ran out, another
 * process ran): see {@link RECOVERED_BYTES}.
 */
const SLOW_WRITE_MS = 10;
/**
 * After a slow write, writes go to the thread pool; once this many bytes in a row were written
 * there each in under SLOW_WRITE_MS, the disk is not holding writers back (the slow write was a
 * descheduling, or the pressure passed) and writes come back to the event loop. A throttled
 * writer is paused often enough that such a run is rare; if one does pass, the next slow write
 * on the loop sends the sink back to the pool: one stall per 32 MiB at most.
 */
const RECOVERED_BYTES = 32 * 1024 * 1024;
/**
 * Bytes queued before the request is paused: while a write is in the thread pool the chunks
 * that arrive meanwhile go out together in one writev, and the socket is not paused and resumed
 * for every chunk (the default 16 KiB is below one socket read).
 */
const QUEUED_BYTES = 1024 * 1024;

/** The buffers left after `written` bytes of them went out. */
function rest(buffers: Buffer[], written: number): Buffer[] {
  let skip = written;
  let i = 0;
  while (i < buffers.length && skip >= (buffers[i] as Buffer).length) {
    skip -= (buffers[i] as Buffer).length;
    i++;
  }
  const left = buffers.slice(i);
  if (skip > 0 && left.length > 0) left[0] = (left[0] as Buffer).subarray(skip);
  return left;
}

function writeAllSync(fd: number, buffers: Buffer[]): void {
  let left = buffers;
  while (left.length > 0) left = rest(left, writevSync(fd, left));
}

function writeAll(fd: number, buffers: Buffer[], done: (err?: Error | null) => void): void {
  writev(fd, buffers, (err, written) => {
    if (err) return done(err);
    const left = rest(buffers, written);
    if (left.length === 0) done();
    else writeAll(fd, left, done);
  });
}

/**
 * An upload's file, written chunk by chunk as the request delivers it. Each chunk is written
 * on the event loop: it lands in the page cache in microseconds, and handing it to libuv's
 * thread pool instead (`fs.WriteStream`) cost envd a quarter of its CPU per upload in futex
 * wake-ups and in pausing and resuming the socket. Once one write is slow (see
 * {@link SLOW_WRITE_MS}), the next go through the thread pool, so a disk that holds writers
 * back stalls envd's other streams for that one write, not for the whole upload; they come back
 * to the loop once the pool finds the disk fast again ({@link RECOVERED_BYTES}).
 * Owns the handle: closes it when finished or destroyed.
 */
export class FileSink extends Writable {
  private slow = false;
  /** Bytes the thread pool wrote fast in a row since the last slow write. */
  private fastBytes = 0;

  constructor(private readonly file: FileHandle) {
    super({ highWaterMark: QUEUED_BYTES });
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    const start = performance.now();
    if (this.slow) {
      writeAll(this.file.fd, buffers, (err) => {
        if (performance.now() - start > SLOW_WRITE_MS) this.fastBytes = 0;
        else {
          for (const b of buffers) this.fastBytes += b.length;
          if (this.fastBytes >= RECOVERED_BYTES) this.slow = false;
        }
        callback(err);
      });
      return;
    }
    try {
      writeAllSync(this.file.fd, buffers);
    } catch (err) {
      callback(err as Error);
      return;
    }
    if (performance.now() - start > SLOW_WRITE_MS) {
      this.slow = true;
      this.fastBytes = 0;
    }
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.file.close().then(
      () => callback(err),
      (closeErr: Error) => callback(err ?? closeErr),
    );
  }
}
