import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Machine-readable reasons a server operation failed; clients switch on these. */
export type ServerErrorCode =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "method_not_allowed"
  | "already_exists"
  | "conflict"
  | "failed_precondition"
  | "payload_too_large"
  | "unsupported_media_type"
  | "resource_exhausted"
  | "insufficient_storage"
  | "internal"
  | "unavailable"
  | "host_unreachable"
  | "timeout";

/** The one place that decides which HTTP status a code is answered with. */
export const httpStatusOf: Record<ServerErrorCode, ContentfulStatusCode> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  method_not_allowed: 405,
  already_exists: 409,
  /** The request clashes with what exists (a host that still has sandboxes, a claimed host id). */
  conflict: 409,
  failed_precondition: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  resource_exhausted: 429,
  /** The server's data dir (or the database's disk) is full; retry once space returns. */
  insufficient_storage: 507,
  internal: 500,
  unavailable: 503,
  /** The sandbox's host stopped answering; retry later (its sandboxes are `missing`). */
  host_unreachable: 503,
  /** A command in a sandbox ran past its `timeout_ms` (it was killed). */
  timeout: 504,
};

/** The one error family of the server: every failure it answers carries a machine `code`. */
export class ServerError extends Error {
  override readonly name = "ServerError";

  /** Extra fields of the JSON body beside code and message (e.g. the sandboxes in the way). */
  readonly details: Record<string, unknown> | undefined;

  /**
   * What went wrong in words only the operator may read (host paths, envd's log): written to the
   * server log with the request id, never sent to the client.
   */
  readonly logDetail: string | undefined;

  constructor(
    readonly code: ServerErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown>; logDetail?: string },
  ) {
    super(message, options);
    this.details = options?.details;
    this.logDetail = options?.logDetail;
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
  toJSON(): { code: ServerErrorCode; message: string } & Record<string, unknown> {
    return { ...this.details, code: this.code, message: this.message };
  }
}
