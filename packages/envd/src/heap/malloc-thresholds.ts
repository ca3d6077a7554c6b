/**
 * Just under the cap on the thresholds glibc raises by itself (DEFAULT_MMAP_THRESHOLD_MAX, 32 MiB
 * on 64-bit): a block's mapping is a little larger than what was asked for.
 */
const RAISING_BLOCK = 31 * 1024 * 1024;

let raised = false;

/**
 * Puts glibc's malloc in this process straight into the state it reaches by itself once it frees
 * a 31 MiB block (mallopt(3), dynamic thresholds): smaller blocks come from the heap, and up to
 * 62 MiB freed at the heap's top stays mapped for reuse. A process moving a transfer allocates a
 * buffer per socket read and frees them in bulk when V8 collects them; with glibc's start-up
 * thresholds (128 KiB) it gave that memory back to the kernel after each collection and faulted
 * every page of the next buffers in again, which on paravirtualised hosts cost more CPU than
 * moving the bytes. The block is never touched (glibc maps it and unmaps it) and is dropped at
 * once; glibc adjusts when V8's next collection frees it.
 */
export function raiseMallocThresholds(): void {
  if (raised) return;
  raised = true;
  Buffer.allocUnsafeSlow(RAISING_BLOCK);
}
