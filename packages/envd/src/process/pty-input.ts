import type * as NodePty from "node-pty";

/** Writes node-pty may hold for a terminal before its held bytes are no longer counted one by one. */
const maxQueuedPtyWrites = 65_536;

/**
 * Input node-pty holds for a terminal whose program has not read it: node-pty's writer queues
 * without limit. Read from node-pty 1.1's writer, which is not public API: 0 where it is missing
 * (the pinned version has it; envd's process-load test fails if an update moves it). Past
 * `maxQueuedPtyWrites` writes the count is taken as over any limit, so a flood of tiny writes
 * costs no more to check than a few large ones.
 */
export function ptyPendingInput(term: NodePty.IPty): number {
  const queue = (
    term as unknown as {
      _writeStream?: { _writeQueue?: Array<{ buffer: Buffer; offset: number }> };
    }
  )._writeStream?._writeQueue;
  if (!Array.isArray(queue)) return 0;
  if (queue.length > maxQueuedPtyWrites) return Number.POSITIVE_INFINITY;
  let bytes = 0;
  for (const task of queue) bytes += task.buffer.byteLength - task.offset;
  return bytes;
}
