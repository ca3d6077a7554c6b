/**
 * Why a connection into a sandbox failed, for its client: Node's messages for system errors
 * name the sandbox's address on the host's network ("connect ECONNREFUSED 10.214.0.2:8000"),
 * which is the host's business, not the client's.
 */
export function connectFailure(err: Error): string {
  const { code, syscall } = err as NodeJS.ErrnoException;
  // Not a system error (an HTTP parse error, say): its message names no address.
  if (!syscall) return err.message;
  if (code === "ECONNREFUSED") return "nothing listens on it (connection refused)";
  return `${syscall} failed (${code ?? "unknown error"})`;
}

/**
 * A 502's message for a connection into a sandbox that failed: what was reached for (a service
 * port, or envd when `port` is absent), in which sandbox, and why.
 */
export function unreachableMessage(
  sandboxId: string,
  port: number | undefined,
  err: Error,
): string {
  return `${port === undefined ? "envd" : `port ${port}`} of sandbox ${sandboxId}: ${connectFailure(err)}`;
}
