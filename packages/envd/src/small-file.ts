import { type BigIntStats, closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { EnvdError } from "./errors.js";

/**
 * Reads a small file synchronously (each step of an asynchronous read is a trip through libuv's
 * thread pool). Sandbox root may put a FIFO or a huge file there: opened non-blocking, only a
 * regular file is read, and only up to `maxBytes`.
 */
export function readSmallFile(
  path: string,
  maxBytes: number,
): { text: string; stats: BigIntStats } {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = fstatSync(fd, { bigint: true });
    if (!stats.isFile() || stats.size > BigInt(maxBytes)) {
      throw new EnvdError(
        "internal",
        `${path} is not a regular file of at most ${maxBytes / (1024 * 1024)} MiB`,
      );
    }
    const buf = Buffer.allocUnsafe(Number(stats.size));
    let read = 0;
    while (read < buf.length) {
      const n = readSync(fd, buf, read, buf.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return { text: buf.toString("utf8", 0, read), stats };
  } finally {
    closeSync(fd);
  }
}
