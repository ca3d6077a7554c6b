import type { Agent, ClientRequest, IncomingMessage, RequestOptions } from "node:http";
import { toWireResponse } from "./node-response.js";
import type { BodyLike, FetchLike } from "./transport.js";

type Http = typeof import("node:http");

/** How long an idle kept-alive socket waits for the next request (undici's default). */
const IDLE_SOCKET_MS = 4_000;

/**
 * Node's own HTTP client dressed as fetch, with a keep-alive agent per protocol (idle sockets
 * do not hold the process).
 * It is part of Node: a package such as undici took 150-265 ms to load and compile its parser in
 * every new process, the first call of each script or `wrenn` command. Request bodies stream
 * with backpressure (each write waits for the socket to drain); response bodies reach a web
 * stream chunk for chunk.
 */
export async function nodeFetch(): Promise<FetchLike> {
  const http = await import("node:http");
  const agents = new Map<string, { lib: Http; agent: Agent }>();
  const transportFor = async (protocol: string) => {
    let found = agents.get(protocol);
    if (!found) {
      // https only when asked for: loading TLS costs a local server's clients for nothing.
      const lib = protocol === "https:" ? ((await import("node:https")) as unknown as Http) : http;
      // Idle sockets close after 4 s (sooner if the server announces less), before a server's
      // own idle timeout can close one as it is reused. Requests under way are not timed.
      found = { lib, agent: new lib.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS }) };
      agents.set(protocol, found);
    }
    return found;
  };
  return async (url, init) => {
    const target = new URL(url);
    const { lib, agent } = agents.get(target.protocol) ?? (await transportFor(target.protocol));
    init.signal.throwIfAborted();
    const options: RequestOptions = { method: init.method, headers: init.headers, agent };
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      // Until the headers: from then on an abort ends the response instead (below).
      const onAbort = () => req.destroy(init.signal.reason);
      const req = lib.request(target, options, (res) => {
        init.signal.removeEventListener("abort", onAbort);
        resolve(res);
      });
      init.signal.addEventListener("abort", onAbort, { once: true });
      // Every error, not only the first: a write after the answer can fail after the socket did.
      req.on("error", (err) => {
        init.signal.removeEventListener("abort", onAbort);
        reject(err);
      });
      sendBody(req, init.body).catch((err: unknown) => req.destroy(err as Error));
    });
    return toWireResponse(res, init);
  };
}

/** Writes the body, each chunk once the socket took the last; ends the request. */
async function sendBody(req: ClientRequest, body: BodyLike | undefined): Promise<void> {
  if (body === undefined || typeof body === "string" || body instanceof Uint8Array) {
    req.end(body);
    return;
  }
  if (body instanceof ArrayBuffer) {
    req.end(new Uint8Array(body));
    return;
  }
  const chunks =
    typeof Blob !== "undefined" && body instanceof Blob
      ? body.stream()
      : (body as ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>);
  // Leaving the loop early (the request failed) returns the source, which closes it.
  for await (const chunk of chunks) {
    if (req.destroyed) return;
    if (!req.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          req.off("drain", done);
          req.off("close", done);
          resolve();
        };
        req.on("drain", done);
        req.on("close", done);
      });
      if (req.destroyed) return;
    }
  }
  req.end();
}
