import { Code, ConnectError } from "@connectrpc/connect";

/** Machine-readable reasons an agent operation failed. */
export type AgentErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "unauthenticated"
  | "internal";

const connectCodes: Record<AgentErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  unauthenticated: Code.Unauthenticated,
  internal: Code.Internal,
};

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
    if (err instanceof AgentError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new AgentError(code, message, { cause: err });
  }

  toConnectError(): ConnectError {
    return new ConnectError(this.message, connectCodes[this.code], undefined, undefined, this);
  }
}
