/** The last `max` bytes of a step's output, for the failure report. */
export class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly max = 16 * 1024) {}

  push(data: Uint8Array): void {
    this.chunks.push(Buffer.from(data));
    this.size += data.byteLength;
    while (this.chunks.length > 1 && this.size - (this.chunks[0]?.byteLength ?? 0) >= this.max) {
      this.size -= this.chunks.shift()?.byteLength ?? 0;
    }
  }

  toString(): string {
    return Buffer.concat(this.chunks).subarray(-this.max).toString("utf8");
  }
}
