import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Machine-readable reasons a server operation failed; clients switch on these. */
export type ServerErrorCode =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "method_not_allowed"
  | "already_exists"
  | "failed_precondition"
  | "payload_too_large"
  | "unsupported_media_type"
  | "resource_exhausted"
  | "internal"
  | "unavailable"
  | "timeout";

/** The one place that decides which HTTP status a code is answered with. */
export const httpStatusOf: Record<ServerErrorCode, ContentfulStatusCode> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  method_not_allowed: 405,
  already_exists: 409,
  failed_precondition: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  resource_exhausted: 429,
  internal: 500,
  unavailable: 503,
  /** A command in a sandbox ran past its `timeout_ms` (it was killed). */
  timeout: 504,
};

/** The one error family of the server: every failure it answers carries a machine `code`. */
export class ServerError extends Error {
  override readonly name = "ServerError";

  constructor(
    readonly code: ServerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get status(): ContentfulStatusCode {
    return httpStatusOf[this.code];
  }

  /** Wraps anything thrown into a ServerError, keeping the original as `cause`. */
  static from(err: unknown, code: ServerErrorCode = "internal"): ServerError {
    if (err instanceof ServerError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new ServerError(code, message, { cause: err });
  }

  /** The JSON body every failure is answered with. */
  toJSON(): { code: ServerErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}
