// BENCH ONLY: preloaded into the server and agent processes of `npm run bench -- load` with
// `node --import` (NODE_OPTIONS). On SIGUSR2 it forces a full garbage collection and writes the
// process's memory to WRENN_BENCH_MEMORY_FILE, so the bench can tell retained heap (a leak) from
// garbage not yet collected. Plain JavaScript: it runs before any loader.
import { renameSync, writeFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

const file = process.env.WRENN_BENCH_MEMORY_FILE;
// What the process spawns (nft, ip, sandboxes) must not inherit the preload.
delete process.env.NODE_OPTIONS;
delete process.env.WRENN_BENCH_MEMORY_FILE;

if (file) {
  setFlagsFromString("--expose-gc");
  /** @type {() => void} */
  const gc = runInNewContext("gc");
  let seq = 0;
  process.on("SIGUSR2", () => {
    // Twice: the first pass runs finalizers that free more on the second.
    gc();
    gc();
    const m = process.memoryUsage();
    seq++;
    const sample = {
      seq,
      at: Date.now(),
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      // Sockets, servers, timers and child processes held open: a leak of those shows here.
      handles: process._getActiveHandles().length,
    };
    // Renamed into place, so a reader never sees half a file.
    writeFileSync(`${file}.tmp`, JSON.stringify(sample));
    renameSync(`${file}.tmp`, file);
  });
}
