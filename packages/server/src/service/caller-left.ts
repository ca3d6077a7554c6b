import type { Logger } from "pino";
import { ServerError } from "../errors.js";

/**
 * The caller closed its request while sandboxes were being made for it (an SDK call aborted or
 * timed out, Ctrl-C, a dropped connection): it will never learn their ids, so they are destroyed
 * rather than left running until their timeout. Throws once they are gone; the answer has
 * nowhere to go, the error is for the log.
 */
export async function destroyIfCallerLeft(
  signal: AbortSignal | undefined,
  ids: readonly string[],
  destroy: (id: string) => Promise<void>,
  logger: Logger,
): Promise<void> {
  if (!signal?.aborted) return;
  await Promise.all(
    ids.map((id) =>
      destroy(id).catch((err: unknown) =>
        logger.warn({ sandboxId: id, err }, "could not destroy a sandbox its caller left"),
      ),
    ),
  );
  throw callerLeft(`; destroyed what it made: ${ids.join(", ")}`);
}

/** Before anything is made: a caller that already left gets nothing made for it. */
export function refuseIfCallerLeft(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw callerLeft("");
}

function callerLeft(detail: string): ServerError {
  return new ServerError("unavailable", `the request was closed before it was answered${detail}`);
}
