import type http from "node:http";
import type http2 from "node:http2";
import type { Readable } from "node:stream";

/**
 * How long the rest of a request body is read and dropped after an early answer before its
 * connection is cut.
 */
const DISCARD_MS = 5_000;

/**
 * Ends `res`, whose answer is all written, once the rest of `req`'s body has been read and
 * dropped (an answer given before the whole body was read: a refusal, or a proxy whose upstream
 * answered early). Ended earlier, Node closes the connection when the client asked it to
 * (`Connection: close`) with unread bytes, which makes the kernel reset it, and the reset can
 * overtake the answer; a keep-alive connection is left with the body's rest where the next
 * request should be. Over HTTP/2 the response ends at once: that closes only its stream. A body
 * still coming after DISCARD_MS has its connection (over HTTP/2, its stream) cut.
 */
export function endAfterBody(
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
): void {
  const source = req as Readable;
  const h2 = "stream" in req;
  const end = () => {
    if (!res.writableEnded) res.end();
  };
  source.unpipe();
  if (source.readableEnded || source.destroyed) {
    end();
    return;
  }
  if (h2) end();
  const cut = setTimeout(() => {
    end();
    if (h2) (req as http2.Http2ServerRequest).stream.close();
    else req.socket.destroy();
  }, DISCARD_MS);
  const finish = () => {
    clearTimeout(cut);
    end();
  };
  source.once("end", finish);
  source.once("close", finish);
  source.resume();
}
