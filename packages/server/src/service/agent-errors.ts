import { Code, ConnectError } from "@connectrpc/connect";
import { ServerError, type ServerErrorCode } from "../errors.js";

const codeOf: Partial<Record<Code, ServerErrorCode>> = {
  [Code.InvalidArgument]: "invalid_argument",
  [Code.NotFound]: "not_found",
  [Code.AlreadyExists]: "already_exists",
  [Code.FailedPrecondition]: "failed_precondition",
  [Code.PermissionDenied]: "permission_denied",
  [Code.OutOfRange]: "invalid_argument",
  [Code.ResourceExhausted]: "resource_exhausted",
  [Code.Unavailable]: "unavailable",
  [Code.DeadlineExceeded]: "unavailable",
};

/** An agent failure as a ServerError; what the agent says about its own protocol stays internal. */
export function fromAgentError(err: unknown, context: string): ServerError {
  if (err instanceof ServerError) return err;
  if (err instanceof ConnectError) {
    const code = codeOf[err.code] ?? "internal";
    return new ServerError(code, `${context}: ${err.rawMessage}`, { cause: err });
  }
  return ServerError.from(err);
}

/** True when the agent says it has no such sandbox (already gone). */
export function isAgentNotFound(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.NotFound;
}

/** A `.catch` handler that rethrows an agent failure as a ServerError about `context`. */
export function rethrowAgentError(context: string): (err: unknown) => never {
  return (err) => {
    throw fromAgentError(err, context);
  };
}

/**
 * A stream from envd that broke after it started: the sandbox (or its host) went away under it,
 * so anything that is not a precise code is `unavailable`, not a server bug.
 */
export function fromBrokenStream(err: unknown, context: string): ServerError {
  const failed = fromAgentError(err, context);
  return failed.code === "internal"
    ? new ServerError("unavailable", failed.message, { cause: err })
    : failed;
}
