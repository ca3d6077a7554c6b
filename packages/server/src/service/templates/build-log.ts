import type { BuildEvent } from "./events.js";

/** Bytes of a build's log a client may leave unread before step output is held back. */
export const LOG_BACKLOG_BYTES = 4 * 1024 * 1024;

/**
 * A build's events as NDJSON lines to `write`, which settles once its line is taken by the
 * client. A step prints as fast as it likes while a client may read slowly or not at all: past
 * `backlog` bytes not yet taken, step output is dropped (the next event sent says how much)
 * rather than queued in the server's memory; every other event is always sent.
 */
export function ndjsonBuildLog(
  write: (line: string) => Promise<unknown>,
  backlog = LOG_BACKLOG_BYTES,
): (event: BuildEvent) => void {
  let pending = 0;
  let dropped = 0;
  const send = (event: BuildEvent) => {
    const line = `${JSON.stringify(event)}\n`;
    const bytes = Buffer.byteLength(line);
    pending += bytes;
    void write(line)
      .catch(() => {})
      .finally(() => {
        pending -= bytes;
      });
  };
  return (event) => {
    if (event.type === "log" && pending > backlog) {
      dropped += Buffer.byteLength(event.text);
      return;
    }
    if (dropped > 0) {
      send({
        type: "info",
        message: `${dropped} bytes of step output were not sent: the log was read slower than the build printed it`,
      });
      dropped = 0;
    }
    send(event);
  };
}
