import { Code, ConnectError } from "@connectrpc/connect";
import { ERROR_CODE_HEADER } from "@wrenn/agent";
import { ServerError, type ServerErrorCode } from "../errors.js";
import { serverErrorIn } from "../hosts/give-up.js";

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

/**
 * Codes whose agent messages describe the host (paths, commands, envd's log): clients get a safe
 * sentence, the agent's words go to the server log. The other codes describe the request.
 */
const HOST_SIDE: ReadonlySet<ServerErrorCode> = new Set(["internal", "unavailable"]);

/** An agent failure as a ServerError; what the agent says about its own protocol stays internal. */
export function fromAgentError(err: unknown, context: string): ServerError {
  const own = serverErrorIn(err);
  if (own) return own;
  if (err instanceof ConnectError) {
    if (err.metadata.get(ERROR_CODE_HEADER) === "insufficient_storage") {
      return new ServerError(
        "insufficient_storage",
        `${context}: the host is out of disk space for it; retry later or ask for less`,
        { cause: err, logDetail: `${context}: ${err.rawMessage}` },
      );
    }
    const code = codeOf[err.code] ?? "internal";
    if (HOST_SIDE.has(code)) {
      const safe =
        code === "internal" ? "the host failed" : "the host could not do it right now; retry";
      return new ServerError(code, `${context}: ${safe}`, {
        cause: err,
        logDetail: `${context}: ${err.rawMessage}`,
      });
    }
    return new ServerError(code, `${context}: ${err.rawMessage}`, { cause: err });
  }
  const wrapped = ServerError.from(err);
  return wrapped.code === "internal"
    ? new ServerError("internal", `${context}: internal error`, {
        cause: err,
        logDetail: `${context}: ${wrapped.message}`,
      })
    : wrapped;
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
