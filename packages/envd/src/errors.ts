import { Code, ConnectError } from "@connectrpc/connect";

/** Machine-readable reasons an envd operation failed; the same names as Connect's codes. */
export type EnvdErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "failed_precondition"
  | "unauthenticated"
  | "resource_exhausted"
  | "insufficient_storage"
  | "method_not_allowed"
  | "internal";

const table: Record<EnvdErrorCode, { connect: Code; http: number }> = {
  invalid_argument: { connect: Code.InvalidArgument, http: 400 },
  not_found: { connect: Code.NotFound, http: 404 },
  already_exists: { connect: Code.AlreadyExists, http: 409 },
  permission_denied: { connect: Code.PermissionDenied, http: 403 },
  failed_precondition: { connect: Code.FailedPrecondition, http: 412 },
  unauthenticated: { connect: Code.Unauthenticated, http: 401 },
  resource_exhausted: { connect: Code.ResourceExhausted, http: 429 },
  // Connect has no code of its own for a full disk: the exact code rides in ERROR_CODE_HEADER.
  insufficient_storage: { connect: Code.ResourceExhausted, http: 507 },
  method_not_allowed: { connect: Code.Unimplemented, http: 405 },
  internal: { connect: Code.Internal, http: 500 },
};

const errnoCodes: Record<string, EnvdErrorCode> = {
  ENOENT: "not_found",
  ENOTDIR: "invalid_argument",
  EISDIR: "invalid_argument",
  EEXIST: "already_exists",
  ENOTEMPTY: "failed_precondition",
  EACCES: "permission_denied",
  EPERM: "permission_denied",
  EROFS: "permission_denied",
  ENOSPC: "insufficient_storage",
  EDQUOT: "insufficient_storage",
  ENAMETOOLONG: "invalid_argument",
  ELOOP: "invalid_argument",
  EINVAL: "invalid_argument",
  EXDEV: "failed_precondition",
};

/** Error metadata carrying envd's (or the agent's) own code, where Connect's codes are coarser. */
export const ERROR_CODE_HEADER = "wrenn-error-code";

/** The one error family of envd. Every failure carries a machine `code`. */
export class EnvdError extends Error {
  override readonly name = "EnvdError";

  constructor(
    readonly code: EnvdErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get httpStatus(): number {
    return table[this.code].http;
  }

  /** Wraps anything thrown; Node's errno errors (ENOENT, EISDIR, …) get their matching code. */
  static from(err: unknown, context?: string): EnvdError {
    if (err instanceof EnvdError) return err;
    if (err instanceof ConnectError)
      return new EnvdError(fromConnectCode(err.code), err.rawMessage);
    const errno = (err as NodeJS.ErrnoException | undefined)?.code;
    const code = (errno && errnoCodes[errno]) || "internal";
    const detail = err instanceof Error ? err.message : String(err);
    return new EnvdError(code, context ? `${context}: ${detail}` : detail, { cause: err });
  }

  toConnectError(): ConnectError {
    return new ConnectError(
      this.message,
      table[this.code].connect,
      { [ERROR_CODE_HEADER]: this.code },
      undefined,
      this,
    );
  }

  toJSON(): { code: EnvdErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

function fromConnectCode(code: Code): EnvdErrorCode {
  for (const [name, entry] of Object.entries(table)) {
    if (entry.connect === code) return name as EnvdErrorCode;
  }
  return "internal";
}

/** Runs `fn`, turning anything it throws into a ConnectError with the right code. */
export async function rpc<T>(fn: () => Promise<T>, context?: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw EnvdError.from(err, context).toConnectError();
  }
}
