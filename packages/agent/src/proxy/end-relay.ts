import type http from "node:http";
import type { Readable } from "node:stream";
import { endAfterBody } from "@wrenn/envd";
import type { ProxyRequest, ProxyResponse } from "./envd-proxy.js";

/**
 * Ends `res` once the answer relayed into it (`answer`, piped with `end: false`) has ended: at
 * once when the client's body has all been read. Otherwise the far side answered before the
 * whole body came (a refused upload): `call` to it is destroyed, as it needs none of the rest,
 * and the client's rest is read and dropped before `res` ends (endAfterBody), or the client's
 * next request on this connection would find it in the way.
 */
export function endRelay(
  answer: http.IncomingMessage,
  call: http.ClientRequest,
  req: ProxyRequest,
  res: ProxyResponse,
): void {
  answer.once("end", () => {
    if ((req as Readable).readableEnded) {
      res.end();
      return;
    }
    call.destroy();
    endAfterBody(req, res);
  });
}
