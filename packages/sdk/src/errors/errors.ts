/** What a command ended with (also carried by {@link CommandExitError}). */
export interface CommandResult {
  /** Everything the command wrote to stdout, decoded as UTF-8. */
  stdout: string;
  /** Everything the command wrote to stderr, decoded as UTF-8. */
  stderr: string;
  /** The exit code; -1 when the process was ended by a signal. */
  exitCode: number;
  /** Why the process ended abnormally, as the sandbox reported it (e.g. a missing binary). */
  error?: string;
  /** Wall time of the command as measured by the server or the client. */
  durationMs?: number;
}

/** Options every {@link WrennError} takes besides its message. */
export interface WrennErrorOptions {
  /** Machine-readable reason, e.g. `not_found` (the server's `code`, or a client-side one). */
  code?: string;
  /** HTTP status of the failed request, when there was one. */
  status?: number;
  /** The server's `X-Request-Id` of the failed request, for support and logs. */
  requestId?: string;
  /** The underlying error. */
  cause?: unknown;
}

// Brands instead of prototype identity, so `instanceof` holds when two copies of the SDK are
// loaded (ESM + CJS, or two versions in one tree).
const KINDS = Symbol.for("@wrenn/sdk/error-kinds");

type Branded = { [KINDS]?: readonly string[] };
type ErrorClass = { readonly kind: string };

/**
 * The base of every error the SDK throws. `code` is machine-readable and stable; `status` and
 * `requestId` come from the HTTP response when there was one.
 */
export class WrennError extends Error {
  /** The brand this class checks for in `instanceof`. */
  static readonly kind: string = "WrennError";

  /** Machine-readable reason, e.g. `not_found`, `timeout`, `connection_failed`. */
  readonly code: string;
  /** HTTP status of the failed request, when there was one. */
  readonly status: number | undefined;
  /** The server's `X-Request-Id`, when the server answered. */
  readonly requestId: string | undefined;
  declare readonly [KINDS]: readonly string[];

  constructor(message: string, options: WrennErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.kind;
    this.code = options.code ?? "unknown";
    this.status = options.status;
    this.requestId = options.requestId;
    const kinds: string[] = [];
    for (
      let c = new.target as unknown;
      c && Object.hasOwn(c, "kind");
      c = Object.getPrototypeOf(c)
    ) {
      kinds.push((c as ErrorClass).kind);
    }
    Object.defineProperty(this, KINDS, { value: Object.freeze(kinds) });
  }

  /** True for any error from any loaded copy of the SDK that belongs to this class. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    const kinds = (value as Branded | null | undefined)?.[KINDS];
    // biome-ignore lint/complexity/noThisInStatic: `this` is the subclass `instanceof` was asked about
    return Array.isArray(kinds) && kinds.includes((this as unknown as ErrorClass).kind);
  }
}

/** 401/403: the API key is missing, wrong or revoked, or lacks the permission. */
export class AuthenticationError extends WrennError {
  static override readonly kind = "AuthenticationError";
}

/** 400/413/415: the server refused the request as malformed; `message` names the field. */
export class InvalidArgumentError extends WrennError {
  static override readonly kind = "InvalidArgumentError";
}

/** 404: no such sandbox, file, process or snapshot in this team. */
export class NotFoundError extends WrennError {
  static override readonly kind = "NotFoundError";
}

/** 409: the resource already exists or is in a state that forbids the operation. */
export class ConflictError extends WrennError {
  static override readonly kind = "ConflictError";
}

/** 429: too many requests or not enough capacity; retried by idempotent calls. */
export class RateLimitError extends WrennError {
  static override readonly kind = "RateLimitError";
  /** How long the server asked to wait before retrying (`Retry-After`), when it said. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: WrennErrorOptions & { retryAfterMs?: number } = {}) {
    super(message, options);
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** 507: a disk is full: the sandbox's, for a file write or mkdir; the host's, for a create. Not retried. */
export class NotEnoughSpaceError extends WrennError {
  static override readonly kind = "NotEnoughSpaceError";
}

/** The call's `timeoutMs` ran out on the client, or the server killed a command past its limit (504). */
export class TimeoutError extends WrennError {
  static override readonly kind = "TimeoutError";
}

/** The sandbox cannot serve the call: it is not running, or its daemon failed. */
export class SandboxError extends WrennError {
  static override readonly kind = "SandboxError";
}

/** The server could not be reached, or the connection broke before an answer. */
export class ConnectionError extends WrennError {
  static override readonly kind = "ConnectionError";
}

/** A command exited with a non-zero code; `result` holds its output. */
export class CommandExitError extends WrennError {
  static override readonly kind = "CommandExitError";
  /** The command's whole result. */
  readonly result: CommandResult;

  constructor(result: CommandResult) {
    super(
      `command exited with code ${result.exitCode}${result.error ? `: ${result.error}` : ""}${
        result.stderr ? `\n${result.stderr.slice(-2000)}` : ""
      }`,
      { code: "command_exit" },
    );
    this.result = result;
  }

  /** The command's exit code. */
  get exitCode(): number {
    return this.result.exitCode;
  }
  /** The command's stdout. */
  get stdout(): string {
    return this.result.stdout;
  }
  /** The command's stderr. */
  get stderr(): string {
    return this.result.stderr;
  }
}
