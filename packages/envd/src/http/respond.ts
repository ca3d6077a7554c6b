import type http from "node:http";
import type http2 from "node:http2";
import { EnvdError } from "../errors.js";

export type Request = http.IncomingMessage | http2.Http2ServerRequest;
export type Response = http.ServerResponse | http2.Http2ServerResponse;

/** Answers `body` as JSON; with `end: false` the response is left for the caller to end. */
export function sendJson(
  res: Response,
  status: number,
  body: unknown,
  { end = true }: { end?: boolean } = {},
): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
  });
  if (end) res.end(payload);
  else (res as http.ServerResponse).write(payload);
}

/** Answers `{code, message}` with the status that matches the error's code. */
export function sendError(res: Response, err: unknown, options: { end?: boolean } = {}): void {
  const error = EnvdError.from(err);
  if (res.headersSent) {
    // Mid-stream: the only honest signal left is to cut the connection.
    (res as http.ServerResponse).destroy?.(error);
    return;
  }
  sendJson(res, error.httpStatus, error.toJSON(), options);
}

/** Reads a small JSON body, refusing anything over `limit` bytes or not valid JSON. */
export async function readJsonBody(req: Request, limit = 64 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new EnvdError("invalid_argument", `request body over ${limit} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new EnvdError("invalid_argument", "request body is not valid JSON");
  }
}

export function requestUrl(req: Request): URL {
  return new URL(req.url ?? "/", "http://envd");
}
