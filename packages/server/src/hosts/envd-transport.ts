import { once } from "node:events";
import type { ClientRequest, IncomingMessage } from "node:http";
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  getAbortSignalReason,
  type UniversalClientFn,
  type UniversalClientRequest,
  validateReadWriteMaxBytes,
} from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { createConnectTransport, createNodeHttpClient } from "@connectrpc/connect-node";
import type { AgentHost } from "../service/sandbox-types.js";

/**
 * envd (Connect) of one sandbox, reached through its host agent's proxy, acting as `user` (the
 * proxy turns X-Wrenn-Envd-User into envd's Basic credentials) or as envd's default user. Calls
 * to an agent in this process are handed to its proxy in-process (`host.direct`), without the
 * loopback HTTP hop to it.
 */
export function envdTransport(host: AgentHost, sandboxId: string, user?: string): Transport {
  const baseUrl = `${host.url}/sandboxes/${sandboxId}/envd`;
  const interceptors: Interceptor[] = [
    (next) => (req) => {
      for (const [name, value] of Object.entries(host.headers ?? {})) req.header.set(name, value);
      if (user) req.header.set("x-wrenn-envd-user", user);
      return next(req);
    },
  ];
  if (!host.direct) {
    return createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      ...(host.ca ? { nodeOptions: { ca: host.ca } } : {}),
      interceptors,
    });
  }
  // What createConnectTransport sets up, with the in-process client in place of node:http.
  return createTransport({
    baseUrl,
    httpClient: directClient(host.direct),
    useBinaryFormat: true,
    interceptors,
    sendCompression: null,
    acceptCompression: [],
    ...validateReadWriteMaxBytes(undefined, undefined, undefined),
  });
}

/**
 * A Connect HTTP client over `direct`; requests `direct` does not take (no running sandbox: its
 * error is the proxy's to answer) go over HTTP as usual.
 */
function directClient(direct: NonNullable<AgentHost["direct"]>): UniversalClientFn {
  const overHttp = createNodeHttpClient({ httpVersion: "1.1" });
  return async (req) => {
    const url = new URL(req.url);
    const headers: Record<string, string> = {};
    req.header.forEach((value, name) => {
      headers[name] = value;
    });
    const request = direct(url.pathname + url.search, {
      method: req.method,
      headers,
      ...(req.signal ? { signal: req.signal } : {}),
    });
    if (!request) return overHttp(req);
    // Failures after the response show on the response (its body breaks), not here.
    request.on("error", () => {});
    void send(req, request);
    let res: IncomingMessage;
    try {
      [res] = (await once(request, "response")) as [IncomingMessage];
    } catch (err) {
      throw connectErrorOf(err, req.signal);
    }
    const header = new Headers();
    for (const [name, value] of Object.entries(res.headers)) {
      for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) {
        header.append(name, v);
      }
    }
    return {
      status: res.statusCode ?? 0,
      header,
      body: bodyOf(res, req.signal),
      trailer: new Headers(),
    };
  };
}

/** Writes the call's body with backpressure; a failure breaks the request (and so the call). */
async function send(req: UniversalClientRequest, request: ClientRequest): Promise<void> {
  try {
    if (req.body) {
      for await (const chunk of req.body) {
        if (!request.write(chunk)) await once(request, "drain");
      }
    }
    request.end();
  } catch (err) {
    request.destroy(err as Error);
  }
}

async function* bodyOf(res: IncomingMessage, signal: AbortSignal | undefined) {
  try {
    for await (const chunk of res) yield chunk as Uint8Array;
  } catch (err) {
    throw connectErrorOf(err, signal);
  }
  // The sandbox's side broke off mid-body: a broken call, not a short one.
  if (!res.complete) throw new ConnectError("envd closed the response early", Code.Unavailable);
}

/** The call's own abort (deadline, cancel) as Connect gave it; otherwise envd was unreachable. */
function connectErrorOf(err: unknown, signal: AbortSignal | undefined): ConnectError {
  if (signal?.aborted) return ConnectError.from(getAbortSignalReason(signal));
  return new ConnectError(
    `envd: ${(err as Error).message}`,
    Code.Unavailable,
    undefined,
    undefined,
    err,
  );
}
