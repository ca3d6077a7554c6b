import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { createLinkedAbortController } from "@connectrpc/connect/protocol";
import type { AgentHost } from "../service/sandbox-types.js";

const straightToSandbox = new WeakSet<http.ClientRequest>();

/**
 * The request goes to the sandbox itself, not through an agent's HTTP (an agent in this
 * process): its connection errors are the sandbox's, not its host's.
 */
export function isStraightToSandbox(req: http.ClientRequest): boolean {
  return straightToSandbox.has(req);
}

/**
 * A plain HTTP(S) request to an agent (the envd proxy's `/files`, snapshot archives), with its
 * bearer and, over HTTPS, trusting only the certificate the agent registered with; to an agent
 * in this process, its envd proxy's request made in-process when it takes it. It is broken off
 * when the server gives up on the host (`host.signal`).
 */
export function agentRequest(
  host: AgentHost,
  pathOrUrl: string,
  options: { method: string; headers?: Record<string, string>; signal?: AbortSignal },
): http.ClientRequest {
  const url = new URL(pathOrUrl, host.url);
  const direct = host.direct?.(url.pathname + url.search, {
    method: options.method,
    headers: options.headers ?? {},
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (direct) {
    straightToSandbox.add(direct);
    return direct;
  }
  const link = host.signal ? createLinkedAbortController(options.signal, host.signal) : undefined;
  const signal = link?.signal ?? options.signal;
  const base = {
    method: options.method,
    headers: { ...host.headers, ...options.headers },
    ...(signal ? { signal } : {}),
  };
  const req =
    url.protocol === "https:"
      ? https.request(url, { ...base, ...(host.ca ? { ca: host.ca } : {}) })
      : http.request(url, base);
  // Done with: the host's signal lets go of it.
  if (link) req.once("close", () => link.abort());
  return req;
}

/** The response to a request that was sent. */
export function responseOf(req: http.ClientRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    req.once("response", resolve);
    req.once("error", reject);
  });
}

/**
 * A web stream over a Node body, handing on each chunk as it is: Node 20's `Readable.toWeb`
 * copies every chunk into a new array, which made it the costliest step of a download here.
 * One chunk is read ahead; a body that breaks mid-way errors the stream, as a cancel destroys it.
 */
export function webStreamOf(body: Readable): ReadableStream<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await chunks.next();
      if (done) controller.close();
      else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    },
    cancel(reason) {
      body.destroy(reason instanceof Error ? reason : undefined);
    },
  });
}
