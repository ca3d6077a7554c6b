import type { ProcessEvent_EndEvent } from "@wrenn/proto/process";

export type Events = AsyncIterable<{
  event?: { event: { case: string | undefined; value?: unknown } };
}>;

/** Reads one Start/Connect stream, collecting output, so a test can wait for what it expects. */
export class EventReader {
  pid = -1;
  stdout = "";
  stderr = "";
  pty = "";
  keepalives = 0;
  end: ProcessEvent_EndEvent | undefined;
  private readonly it: AsyncIterator<{
    event?: { event: { case: string | undefined; value?: unknown } };
  }>;

  constructor(events: Events) {
    this.it = events[Symbol.asyncIterator]();
  }

  /** Reads events until `done()` holds; fails if the stream ends first. */
  async until(done: () => boolean): Promise<this> {
    while (!done()) {
      const next = await this.it.next();
      if (next.done)
        throw new Error(
          `stream ended early; stdout=${this.stdout} pty=${this.pty} stderr=${this.stderr}`,
        );
      const event = next.value.event?.event;
      if (!event) continue;
      if (event.case === "start") this.pid = (event.value as { pid: number }).pid;
      else if (event.case === "keepalive") this.keepalives++;
      else if (event.case === "end") this.end = event.value as ProcessEvent_EndEvent;
      else if (event.case === "data") {
        const output = (
          event.value as { output: { case: "stdout" | "stderr" | "pty"; value: Uint8Array } }
        ).output;
        this[output.case] += Buffer.from(output.value).toString();
      }
    }
    return this;
  }

  started(): Promise<this> {
    return this.until(() => this.pid >= 0);
  }

  toEnd(): Promise<this> {
    return this.until(() => this.end !== undefined);
  }
}
