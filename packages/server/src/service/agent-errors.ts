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
