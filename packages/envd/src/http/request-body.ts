import type { Http2ServerRequest } from "node:http2";
import type { Readable, Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { EnvdError } from "../errors.js";
import { type Request, type Response, sendError } from "./respond.js";

/**
 * How long the rest of a request body is read and dropped after an early answer before its
 * connection is cut.
 */
const DISCARD_MS = 5_000;

function aborted(): EnvdError {
  return new EnvdError("invalid_argument", "upload aborted by the client");
}

/**
 * The request's bytes, gunzipped when the client sent `Content-Encoding: gzip` (as E2B's envd
 * accepts). Never destroys the request: a destroyed, half-read request takes its socket with it,
 * and the client would see a reset instead of the answer. A client hanging up fails the gunzip
 * stream.
 */
export function requestBody(req: Request): Readable {
  const encoding = String(req.headers["content-encoding"] ?? "identity").toLowerCase();
  if (encoding === "identity") return req as Readable;
  if (encoding !== "gzip")
    throw new EnvdError("invalid_argument", `unsupported content-encoding ${encoding}`);
  const gunzip = createGunzip();
  const source = req as Readable;
  source.once("error", (err) => gunzip.destroy(err));
  source.once("close", () => {
    if (!source.readableEnded) gunzip.destroy(aborted());
  });
  return source.pipe(gunzip);
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
  body.pipe(sink);
  try {
    await finished(sink);
  } finally {
    body.off("error", broken);
    body.off("close", closed);
    body.unpipe(sink);
  }
}

/**
 * Answers `err` to a request whose body is not all read. Over HTTP/1.1 the answer goes out at
 * once, but the response ends only once the rest of the body has been read and dropped: ended
 * earlier, Node closes the connection when the client asked it to (`Connection: close`), with
 * unread bytes, which makes the kernel reset it, and the reset can overtake the answer. So the
 * client, still sending, finishes and reads the answer, and a keep-alive connection stays
 * usable. (Over HTTP/2 the response ends at once: that closes only its stream.) A body still
 * coming after DISCARD_MS has its connection (over HTTP/2, its stream) cut.
 */
export function answerBeforeBody(req: Request, res: Response, err: unknown): void {
  const source = req as Readable;
  if (req.complete || source.destroyed || res.headersSent) {
    sendError(res, err);
    return;
  }
  const h2 = "stream" in req;
  sendError(res, err, { end: h2 });
  const end = () => {
    if (!res.writableEnded) res.end();
  };
  const cut = setTimeout(() => {
    end();
    if (h2) (req as Http2ServerRequest).stream.close();
    else req.socket.destroy();
  }, DISCARD_MS);
  const finish = () => {
    clearTimeout(cut);
    end();
  };
  source.once("end", finish);
  source.once("close", finish);
  source.unpipe();
  source.resume();
}
