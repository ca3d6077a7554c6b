import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "pino";
import { ServerError } from "../../errors.js";

/** E2B's error body: `{code, message}` with the HTTP status as a number (its SDK checks `=== 404`). */
export function e2bError(c: Context, status: number, message: string): Response {
  return c.json({ code: status, message }, status as 400);
}

/** The E2B routes' error handler: Wrenn's errors, in E2B's shape. */
export function e2bErrorHandler(logger: Logger) {
  return (err: Error, c: Context): Response => {
    if (err instanceof ServerError) {
      // E2B answers 409 for a state conflict, as Wrenn does; failed_precondition is also 409.
      return e2bError(c, err.status, err.message);
    }
    if (err instanceof HTTPException) return e2bError(c, err.status, err.message);
    logger.error({ err, requestId: c.get("requestId") }, "unhandled error (e2b api)");
    return e2bError(c, 500, "internal error");
  };
}
