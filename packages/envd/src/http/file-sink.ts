import { writev, writevSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { Writable } from "node:stream";

/**
 * A write(2) that took longer than this means the kernel is holding writers back (dirty-page
 * throttling, reclaim, a frozen or slow disk): page-cache writes otherwise take microseconds.
 */
const SLOW_WRITE_MS = 10;

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
 * {@link SLOW_WRITE_MS}), the rest go through the thread pool, so a disk that holds writers
 * back stalls envd's other streams for that one write, not for the whole upload.
 * Owns the handle: closes it when finished or destroyed.
 */
export class FileSink extends Writable {
  private slow = false;

  constructor(private readonly file: FileHandle) {
    super();
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    if (this.slow) {
      writeAll(this.file.fd, buffers, callback);
      return;
    }
    const start = performance.now();
    try {
      writeAllSync(this.file.fd, buffers);
    } catch (err) {
      callback(err as Error);
      return;
    }
    if (performance.now() - start > SLOW_WRITE_MS) this.slow = true;
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.file.close().then(
      () => callback(err),
      (closeErr: Error) => callback(err ?? closeErr),
    );
  }
}
