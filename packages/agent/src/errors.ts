import { Code, ConnectError } from "@connectrpc/connect";
import { ERROR_CODE_HEADER } from "@wrenn/envd";

/** Machine-readable reasons an agent operation failed. */
export type AgentErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "unauthenticated"
  | "insufficient_storage"
  | "internal";

const connectCodes: Record<AgentErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  unauthenticated: Code.Unauthenticated,
  // Connect has no code of its own for it: the exact code rides in ERROR_CODE_HEADER.
  insufficient_storage: Code.ResourceExhausted,
  internal: Code.Internal,
};

// The agent's own code rides in the same metadata as envd's, where Connect's codes are coarser.
export { ERROR_CODE_HEADER };

/** The one error family of the agent: every failure it reports carries a machine `code`. */
export class AgentError extends Error {
  override readonly name = "AgentError";

  constructor(
    readonly code: AgentErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Wraps anything thrown into an AgentError, keeping the original as `cause`. */
  static from(err: unknown, code: AgentErrorCode = "internal"): AgentError {
    // A full disk anywhere under an operation is the host's state, not a bug (ENOSPC, or the
    // words of a command such as mkfs that ran out).
    if (err instanceof AgentError && err.code !== "internal") return err;
    if (code === "internal" && isDiskFull(err)) {
      return new AgentError("insufficient_storage", "this host is out of disk space", {
        cause: err,
      });
    }
    if (err instanceof AgentError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new AgentError(code, message, { cause: err });
  }

  toConnectError(): ConnectError {
    return new ConnectError(
      this.message,
      connectCodes[this.code],
      { [ERROR_CODE_HEADER]: this.code },
      undefined,
      this,
    );
  }
}

/** ENOSPC somewhere in an error, its causes or its aggregated errors. */
function isDiskFull(err: unknown, depth = 0): boolean {
  if (!(err instanceof Error) || depth > 8) return false;
  if ((err as NodeJS.ErrnoException).code === "ENOSPC") return true;
  if (/No space left on device/i.test(err.message)) return true;
  const inner = err instanceof AggregateError ? err.errors : [];
  return [err.cause, ...inner].some((e) => isDiskFull(e, depth + 1));
}
