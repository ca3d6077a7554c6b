import type { Interceptor } from "@connectrpc/connect";
import { createLinkedAbortController } from "@connectrpc/connect/protocol";
import { ServerError } from "../errors.js";

/**
 * What calls under way to a host fail with once the server gives up on it (marked unreachable):
 * the 503 new calls to its sandboxes get, instead of waiting out a host that may never answer.
 */
export function hostGivenUp(hostId: string): ServerError {
  return new ServerError("host_unreachable", `host ${hostId} stopped answering; retry later`);
}

/**
 * Breaks each Connect call off when `hostSignal` fires. The link is dropped when the call ends
 * (Connect aborts a call's own signal then), so the host's signal holds no finished calls.
 */
export function breakOffOn(hostSignal: AbortSignal): Interceptor {
  return (next) => (req) =>
    next({ ...req, signal: createLinkedAbortController(req.signal, hostSignal).signal });
}

/**
 * The server's own error in `err` or its causes: a call broken off as above carries its abort
 * reason a level or two down (Connect's and Node's errors wrap it).
 */
export function serverErrorIn(err: unknown): ServerError | undefined {
  let e = err;
  for (let depth = 0; depth < 4 && e instanceof Error; depth++, e = e.cause) {
    if (e instanceof ServerError) return e;
  }
  return undefined;
}
