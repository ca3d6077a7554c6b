import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "pino";
import type { ZodError } from "zod";
import { isDatabaseUnavailable } from "../db/index.js";
import { httpStatusOf, ServerError, type ServerErrorCode } from "../errors.js";
import type { AppEnv } from "./env.js";
import { ErrorSchema } from "./schemas.js";

const descriptions: Partial<Record<ServerErrorCode, string>> = {
  invalid_argument: "The request is malformed or a field is invalid",
  unauthenticated: "Missing, expired or invalid credentials",
  not_found: "No such resource in this team",
  already_exists: "A resource with that unique name already exists",
  payload_too_large: "The request body is too large",
  unsupported_media_type: "The body must be application/json",
};

/** OpenAPI `responses` entries for the error codes a route can answer with. */
export function errorResponses(...codes: ServerErrorCode[]) {
  const responses: Record<
    number,
    { description: string; content: { "application/json": { schema: typeof ErrorSchema } } }
  > = {};
  for (const code of codes) {
    responses[httpStatusOf[code]] = {
      description: descriptions[code] ?? code,
      content: { "application/json": { schema: ErrorSchema } },
    };
  }
  return responses;
}

export function errorResponse(c: Context, err: ServerError): Response {
  return c.json(err.toJSON(), err.status);
}

/** What to call the whole of a validation target when the issue is not about one field. */
const targetNames: Record<string, string> = {
  json: "body",
  query: "query",
  param: "path",
  header: "headers",
};

/** "field.path: what is wrong" for the first few issues, so the client knows which field. */
export function describeIssues(target: string, error: ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      // A record key is part of the path: a long one is cut so the answer does not echo it whole.
      const path = issue.path.map((part) => clip(String(part))).join(".");
      // zod says only "Invalid key in record"; the key's own check says what is wrong with it.
      const message = (issue.code === "invalid_key" && issue.issues[0]?.message) || issue.message;
      return `${path || targetNames[target] || target}: ${message}`;
    })
    .join("; ");
}

function clip(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

/** Turns a failed zod validation into 400 invalid_argument (or 415 for a non-JSON body). */
export function validationHook(
  result: { target: string; success: boolean; error?: ZodError },
  c: Context<AppEnv>,
): Response | undefined {
  if (result.success || !result.error) return undefined;
  if (result.target === "json") {
    const mediaType = (c.req.header("content-type") ?? "").split(";")[0]?.trim() ?? "";
    if (!JSON_MEDIA_TYPE.test(mediaType)) {
      return errorResponse(
        c,
        new ServerError("unsupported_media_type", "request body must be sent as application/json"),
      );
    }
  }
  return errorResponse(
    c,
    new ServerError("invalid_argument", describeIssues(result.target, result.error)),
  );
}

const codeOfStatus: Record<number, ServerErrorCode> = {
  400: "invalid_argument",
  401: "unauthenticated",
  403: "permission_denied",
  404: "not_found",
  405: "method_not_allowed",
  409: "already_exists",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "resource_exhausted",
  503: "unavailable",
};

/** Every thrown error leaves as `{code, message}`; only real bugs become 500, and get logged. */
export function errorHandler(logger: Logger): ErrorHandler<AppEnv> {
  return (err, c) => {
    if (err instanceof ServerError) {
      const requestId = c.get("requestId");
      const retryAfter = err.details?.retry_after_sec;
      if (typeof retryAfter === "number") c.header("Retry-After", String(retryAfter));
      if (err.logDetail !== undefined) {
        // The detail stays here; the client gets the request id to quote to the operator.
        logger[err.code === "internal" ? "error" : "warn"](
          { err, requestId, detail: err.logDetail },
          "request failed on the host",
        );
        return errorResponse(
          c,
          new ServerError(err.code, `${err.message} (request id ${requestId})`, {
            ...(err.details ? { details: err.details } : {}),
          }),
        );
      }
      if (err.code === "internal") logger.error({ err, requestId }, "internal error");
      return errorResponse(c, err);
    }
    if (err instanceof HTTPException) {
      const code =
        codeOfStatus[err.status] ?? (err.status >= 500 ? "internal" : "invalid_argument");
      const message = err.status === 413 ? "request body is too large" : err.message || code;
      return errorResponse(c, new ServerError(code, message, { cause: err }));
    }
    if (isDatabaseUnavailable(err)) {
      logger.warn({ err, requestId: c.get("requestId") }, "database unavailable");
      c.header("Retry-After", "1");
      return errorResponse(
        c,
        new ServerError("unavailable", "the database cannot be reached right now; retry"),
      );
    }
    if (isDiskFull(err)) {
      logger.error({ err, requestId: c.get("requestId") }, "disk full");
      return errorResponse(
        c,
        new ServerError("insufficient_storage", "the server is out of disk space; retry later"),
      );
    }
    if (isTextEncodingError(err)) {
      // A last line of defence: validation should have refused the text before the database saw it.
      logger.warn({ err, requestId: c.get("requestId") }, "database refused request text");
      return errorResponse(
        c,
        new ServerError("invalid_argument", "text must not contain NUL or unencodable characters"),
      );
    }
    const requestId = c.get("requestId");
    logger.error({ err, requestId }, "unhandled error");
    return errorResponse(
      c,
      new ServerError("internal", `internal error (request id ${requestId})`),
    );
  };
}

/** SQLite's SQLITE_FULL, PostgreSQL's disk_full (53100), or ENOSPC from the file system. */
function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "SQLITE_FULL" || code === "53100" || code === "ENOSPC";
}

/** PostgreSQL's "character not in repertoire" / "untranslatable character" (e.g. NUL in text). */
function isTextEncodingError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "22021" || code === "22P05";
}

export const notFoundHandler: NotFoundHandler<AppEnv> = (c) =>
  errorResponse(c, new ServerError("not_found", `no route for ${c.req.method} ${c.req.path}`));
