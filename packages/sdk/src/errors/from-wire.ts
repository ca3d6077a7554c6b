import {
  AuthenticationError,
  ConflictError,
  InvalidArgumentError,
  NotEnoughSpaceError,
  NotFoundError,
  RateLimitError,
  SandboxError,
  TimeoutError,
  WrennError,
  type WrennErrorOptions,
} from "./errors.js";

type ErrorClass = new (message: string, options?: WrennErrorOptions) => WrennError;

/**
 * The one table from the server's wire `code` to an error class. `inSandbox` is used instead
 * when the call runs inside a sandbox (exec, files, processes), where "not running" and "daemon
 * unreachable" are the sandbox's state rather than a generic conflict or outage.
 */
const byCode: Record<string, { cls: ErrorClass; inSandbox?: ErrorClass }> = {
  invalid_argument: { cls: InvalidArgumentError },
  payload_too_large: { cls: InvalidArgumentError },
  unsupported_media_type: { cls: InvalidArgumentError },
  method_not_allowed: { cls: InvalidArgumentError },
  unauthenticated: { cls: AuthenticationError },
  permission_denied: { cls: AuthenticationError },
  not_found: { cls: NotFoundError },
  already_exists: { cls: ConflictError },
  conflict: { cls: ConflictError },
  failed_precondition: { cls: ConflictError, inSandbox: SandboxError },
  resource_exhausted: { cls: RateLimitError },
  insufficient_storage: { cls: NotEnoughSpaceError },
  timeout: { cls: TimeoutError },
  unavailable: { cls: WrennError, inSandbox: SandboxError },
  // The sandbox's host stopped answering (503): retried by idempotent calls like any 503.
  host_unreachable: { cls: WrennError, inSandbox: SandboxError },
  internal: { cls: WrennError },
};

/** Codes for statuses that came without a JSON body (a proxy's page, an empty 404…). */
const codeOfStatus: Record<number, string> = {
  400: "invalid_argument",
  401: "unauthenticated",
  403: "permission_denied",
  404: "not_found",
  405: "method_not_allowed",
  409: "failed_precondition",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "resource_exhausted",
  500: "internal",
  502: "unavailable",
  503: "unavailable",
  504: "timeout",
  507: "insufficient_storage",
};

/** What a failed call said, however it said it. */
export interface WireError {
  status?: number;
  code?: string;
  message?: string;
  requestId?: string;
  retryAfterMs?: number;
  inSandbox?: boolean;
  cause?: unknown;
}

/** Builds the typed error for a failure the server reported. */
export function errorFromWire(wire: WireError): WrennError {
  const code =
    wire.code ?? (wire.status === undefined ? "unknown" : (codeOfStatus[wire.status] ?? "unknown"));
  const entry = byCode[code];
  const cls = (wire.inSandbox ? entry?.inSandbox : undefined) ?? entry?.cls ?? WrennError;
  const message = wire.message || `request failed${wire.status ? ` with HTTP ${wire.status}` : ""}`;
  const options = {
    code,
    ...(wire.status !== undefined ? { status: wire.status } : {}),
    ...(wire.requestId !== undefined ? { requestId: wire.requestId } : {}),
    ...(wire.cause !== undefined ? { cause: wire.cause } : {}),
  };
  if (cls === RateLimitError) {
    return new RateLimitError(message, {
      ...options,
      ...(wire.retryAfterMs !== undefined ? { retryAfterMs: wire.retryAfterMs } : {}),
    });
  }
  return new cls(message, options);
}

/** A failed answer's `{code, message}` body (or any text) and status as a typed error. */
export function errorFromBody(
  status: number,
  text: string,
  extra: { requestId?: string; inSandbox?: boolean; retryAfterMs?: number } = {},
): WrennError {
  let code: string | undefined;
  let message: string | undefined;
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body.code === "string") code = body.code;
    if (typeof body.message === "string") message = body.message;
  } catch {
    message = readable(text) || undefined;
  }
  return errorFromWire({
    status,
    ...(code !== undefined ? { code } : {}),
    ...(message !== undefined ? { message } : {}),
    ...extra,
  });
}

/**
 * A body that is not JSON, shortened: an HTML page (a proxy's 502, a captive portal) as its
 * words, not its markup.
 */
function readable(text: string): string {
  const html = /^\s*</.test(text);
  const words = html
    ? text
        .slice(0, 20_000)
        .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, " ")
        .replace(/<[^>]*>/g, " ")
        .replace(/&nbsp;/g, " ")
        .replace(/\s+/g, " ")
        .trim()
    : text;
  return words.slice(0, 500);
}

/** Reads a failed response's body and headers into a typed error. */
export async function errorFromResponse(
  res: { status: number; headers: { get(name: string): string | null }; text(): Promise<string> },
  extra: { inSandbox?: boolean; retryAfterMs?: number } = {},
): Promise<WrennError> {
  const requestId = res.headers.get("x-request-id") ?? undefined;
  return errorFromBody(res.status, await res.text().catch(() => ""), {
    ...extra,
    ...(requestId !== undefined ? { requestId } : {}),
  });
}
