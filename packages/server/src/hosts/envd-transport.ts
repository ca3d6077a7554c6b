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
import { breakOffOn } from "./give-up.js";

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
    ...(host.signal ? [breakOffOn(host.signal)] : []),
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

/** The agent's proxy over loopback HTTP, for what its in-process path declines. */
const overHttp = createNodeHttpClient({ httpVersion: "1.1" });

/**
 * A Connect HTTP client over `direct`; requests `direct` does not take (no running sandbox: its
 * error is the proxy's to answer) go over HTTP as usual.
 */
function directClient(direct: NonNullable<AgentHost["direct"]>): UniversalClientFn {
  return async (req) => {
    const url = new URL(req.url);
    const headers: Record<string, string> = {};
    req.header.forEach((value, name) => {
      headers[name] = value;
    });
    const request = direct(url.pathname + url.search, { method: req.method, headers });
    if (!request) return overHttp(req);
    // Connect fires the call's signal also when the call is done (its cleanup): only an exchange
    // still under way is broken off, never the kept-alive socket a finished one handed back.
    const { signal } = req;
    let done = false;
    let res: IncomingMessage | undefined;
    const abort = () => {
      if (done) return;
      // Arrived whole but not read: drained, so its socket goes back to the pool (destroying it
      // then would raise an error on a socket nobody listens to any more).
      if (res?.complete) res.resume();
      else request.destroy(connectErrorOf(undefined, signal));
    };
    const finish = () => {
      done = true;
      signal?.removeEventListener("abort", abort);
    };
    signal?.addEventListener("abort", abort, { once: true });
    if (signal?.aborted) abort();
    // Failures after the response show on the response (its body breaks), not here.
    request.on("error", () => {});
    void send(req, request);
    try {
      [res] = (await once(request, "response")) as [IncomingMessage];
    } catch (err) {
      finish();
      throw connectErrorOf(err, signal);
    }
    // Whole, the response hands its socket back to the keep-alive pool: nothing to break off.
    res.once("end", finish);
    const header = new Headers();
    for (const [name, value] of Object.entries(res.headers)) {
      for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) {
        header.append(name, v);
      }
    }
    return {
      status: res.statusCode ?? 0,
      header,
      body: bodyOf(res, signal, finish),
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

async function* bodyOf(res: IncomingMessage, signal: AbortSignal | undefined, finish: () => void) {
  try {
    for await (const chunk of res) yield chunk as Uint8Array;
  } catch (err) {
    throw connectErrorOf(err, signal);
  } finally {
    // Left before its end (the caller stopped reading): the exchange is broken off now.
    if (!res.complete) res.destroy();
    finish();
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
