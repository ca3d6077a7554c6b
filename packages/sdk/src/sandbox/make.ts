import { type ApiClient, type CallOptions, Deadline } from "../http/index.js";

/** How long an aborted call waits for the server's answer and then for the kills. */
const CLEANUP_MS = 15_000;

/**
 * Sends a call that makes sandboxes (create, fork) so that an abort or timeout while the server
 * works leaves none behind: the server goes on making them whatever the client does, so the
 * request stays open until it answers, the sandboxes named by `ids(answer)` are killed, and only
 * then does the call reject with the abort's reason. Waiting for the answer and the kills is
 * bounded by {@link CLEANUP_MS} (then the request is closed and the reason thrown all the same).
 */
export async function makeSandboxes<T>(
  client: ApiClient,
  call: CallOptions,
  ids: (answer: T) => string[],
): Promise<T> {
  const timeoutMs = call.timeoutMs ?? call.defaultTimeoutMs ?? client.defaultTimeoutMs;
  const deadline = new Deadline({ ...call, timeoutMs }, `${call.method} ${call.path}`);
  const giveUp = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    timer = setTimeout(() => giveUp.abort(deadline.signal.reason), CLEANUP_MS);
    (timer as { unref?: () => void }).unref?.();
  };
  deadline.signal.addEventListener("abort", onAbort, { once: true });
  const bounded = { signal: giveUp.signal, timeoutMs: 0 };
  try {
    // Aborted before it was sent: nothing was made.
    if (deadline.signal.aborted) throw deadline.signal.reason;
    const answer = await client.json<T>({ ...call, ...bounded });
    if (!deadline.signal.aborted) return answer;
    await Promise.all(
      ids(answer).map((id) =>
        client
          .json({ method: "DELETE", path: `/v1/sandboxes/${encodeURIComponent(id)}`, ...bounded })
          .catch(() => {}),
      ),
    );
    throw deadline.signal.reason;
  } catch (err) {
    if (deadline.signal.aborted) throw deadline.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
    deadline.signal.removeEventListener("abort", onAbort);
    deadline.release();
  }
}
