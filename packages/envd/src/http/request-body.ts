import type { Readable, Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { EnvdError } from "../errors.js";
import { endAfterBody } from "./end-after-body.js";
import { type Request, type Response, sendError } from "./respond.js";

function aborted(): EnvdError {
  return new EnvdError("invalid_argument", "upload aborted by the client");
}

/**
 * The request's bytes, gunzipped when the client sent `Content-Encoding: gzip` (as E2B's envd
 * accepts). Never destroys the request: a destroyed, half-read request takes its socket with it,
 * and the client would see a reset instead of the answer. A client hanging up fails the gunzip
 * stream. The stream may fail before its consumer listens (a body that is not gzip breaks on its
 * first bytes, which can arrive while the upload still looks at its target): the consumer asks
 * {@link brokenAlready} once it listens.
 */
export function requestBody(req: Request): Readable {
  const encoding = String(req.headers["content-encoding"] ?? "identity").toLowerCase();
  if (encoding === "identity") return req as Readable;
  if (encoding !== "gzip")
    throw new EnvdError("invalid_argument", `unsupported content-encoding ${encoding}`);
  const gunzip = createGunzip();
  // An error with nobody listening yet would be thrown; brokenAlready reports it instead.
  gunzip.on("error", () => {});
  const source = req as Readable;
  source.once("error", (err) => gunzip.destroy(err));
  source.once("close", () => {
    if (!source.readableEnded) gunzip.destroy(aborted());
  });
  return source.pipe(gunzip);
}

/** Why `body` already failed or was cut short, if it was: its events are past. */
export function brokenAlready(body: Readable): Error | undefined {
  if (body.errored) return body.errored;
  if (body.destroyed && !body.readableEnded) return aborted();
  return undefined;
}

/**
 * Pours `body` into `sink` with backpressure, as `pipeline` would, except that a failing sink
 * leaves `body` unpiped but whole (see requestBody); a body that breaks or is cut short destroys
 * the sink. Settles once the sink is closed.
 */
export async function pour(body: Readable, sink: Writable): Promise<void> {
  const broken = (err: Error) => sink.destroy(err);
  const closed = () => {
    if (!body.readableEnded) sink.destroy(aborted());
  };
  body.once("error", broken);
  body.once("close", closed);
  const early = brokenAlready(body);
  if (early) sink.destroy(early);
  else body.pipe(sink);
  try {
    await finished(sink);
  } finally {
    body.off("error", broken);
    body.off("close", closed);
    body.unpipe(sink);
  }
}

/**
 * Answers `err` to a request whose body is not all read: the answer goes out at once, and the
 * response ends as endAfterBody says (after the rest of the body, or cut short).
 */
export function answerBeforeBody(req: Request, res: Response, err: unknown): void {
  if (req.complete || (req as Readable).destroyed || res.headersSent) {
    sendError(res, err);
    return;
  }
  sendError(res, err, { end: false });
  endAfterBody(req, res);
}
