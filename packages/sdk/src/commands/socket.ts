import { ConnectionError, errorFromBody } from "../errors/index.js";
import type { ApiClient } from "../http/index.js";

/** A message from the server: text frames as strings, binary frames as bytes. */
export type SocketMessage = string | Uint8Array;

/** The exec stream's WebSocket, the same over `ws` (Node) and a platform WebSocket. */
export interface ExecSocket {
  /** Sends a frame; resolves once it is handed to the network (Node) or queued (browsers). */
  send(data: string | Uint8Array): Promise<void>;
  /** Closes with 1000 (the server keeps the process running). */
  close(): void;
  /** Set before the first message can arrive. */
  onMessage: (message: SocketMessage) => void;
  /** Called once when the socket closes, for whatever reason. */
  onClose: (code: number, reason: string) => void;
}

/** The minimal standard WebSocket surface (browsers, Deno, Bun, Node >= 22). */
interface StandardWebSocket {
  binaryType: string;
  readonly readyState: number;
  onopen: (() => void) | null;
  onerror: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  send(data: string | Uint8Array): void;
  close(code?: number): void;
}
type StandardWebSocketClass = new (url: string) => StandardWebSocket;

const isNode = () =>
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node ===
  "string";

/** Opens `path` (e.g. `/v1/sandboxes/x/exec/stream`) as a WebSocket; failures before the upgrade are typed. */
export async function openSocket(
  client: ApiClient,
  path: string,
  signal: AbortSignal | undefined,
): Promise<ExecSocket> {
  const url = client.url(path).replace(/^http/, "ws");
  const Standard = (globalThis as { WebSocket?: StandardWebSocketClass }).WebSocket;
  // Node: `ws`, which can send the key as a header and report the refusal's HTTP status.
  if (isNode() || !Standard) return openNodeSocket(url, client.apiKey, signal);
  // Browsers cannot set headers on a WebSocket: a single-use ticket goes in the URL, never the key.
  const ticket = await streamTicket(client, path, signal);
  return openStandardSocket(
    Standard,
    `${url}${url.includes("?") ? "&" : "?"}ticket=${encodeURIComponent(ticket)}`,
    signal,
  );
}

/** A single-use ticket (`POST /v1/sandboxes/{id}/ticket`) for the sandbox `path` belongs to. */
async function streamTicket(
  client: ApiClient,
  path: string,
  signal: AbortSignal | undefined,
): Promise<string> {
  const id = /^\/v1\/sandboxes\/([^/?]+)/.exec(path)?.[1];
  if (!id) throw new ConnectionError(`no sandbox in stream path ${path}`);
  const { ticket } = await client.json<{ ticket: string }>({
    method: "POST",
    path: `/v1/sandboxes/${id}/ticket`,
    ...(signal ? { signal } : {}),
  });
  return ticket;
}

function openNodeSocket(
  url: string,
  apiKey: string,
  signal: AbortSignal | undefined,
): Promise<ExecSocket> {
  return import("ws").then(
    ({ default: WebSocket }) =>
      new Promise<ExecSocket>((resolve, reject) => {
        const ws = new WebSocket(url, {
          headers: { "x-api-key": apiKey },
          perMessageDeflate: false,
        });
        let opened = false;
        const onAbort = () => {
          ws.terminate();
          reject(signal?.reason);
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        const socket: ExecSocket = {
          send: (data) =>
            new Promise((done, fail) =>
              ws.send(data, (err) =>
                err
                  ? fail(
                      new ConnectionError(`exec stream: ${err.message}`, {
                        code: "connection_failed",
                        cause: err,
                      }),
                    )
                  : done(),
              ),
            ),
          close: () => ws.close(1000),
          onMessage: () => {},
          onClose: () => {},
        };
        ws.on("unexpected-response", (_req, res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            signal?.removeEventListener("abort", onAbort);
            const requestId = res.headers["x-request-id"];
            reject(
              errorFromBody(res.statusCode ?? 0, Buffer.concat(chunks).toString("utf8"), {
                inSandbox: true,
                ...(typeof requestId === "string" ? { requestId } : {}),
              }),
            );
            ws.terminate();
          });
        });
        ws.on("error", (err) => {
          if (!opened) {
            signal?.removeEventListener("abort", onAbort);
            reject(
              new ConnectionError(`exec stream ${url}: ${err.message}`, {
                code: "connection_failed",
                cause: err,
              }),
            );
          }
        });
        ws.on("open", () => {
          opened = true;
          signal?.removeEventListener("abort", onAbort);
          resolve(socket);
        });
        ws.on("message", (data, isBinary) => {
          const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
          socket.onMessage(
            isBinary
              ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
              : buf.toString("utf8"),
          );
        });
        ws.on("close", (code, reason) => {
          if (opened) socket.onClose(code, reason.toString("utf8"));
        });
      }),
  );
}

function openStandardSocket(
  Standard: StandardWebSocketClass,
  url: string,
  signal: AbortSignal | undefined,
): Promise<ExecSocket> {
  return new Promise((resolve, reject) => {
    const ws = new Standard(url);
    ws.binaryType = "arraybuffer";
    let opened = false;
    const onAbort = () => {
      ws.close();
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const socket: ExecSocket = {
      send: async (data) => ws.send(data),
      close: () => ws.close(1000),
      onMessage: () => {},
      onClose: () => {},
    };
    ws.onopen = () => {
      opened = true;
      signal?.removeEventListener("abort", onAbort);
      resolve(socket);
    };
    // Browsers hide why an upgrade was refused; the stream's own error frames say more.
    ws.onerror = () => {
      if (!opened) {
        signal?.removeEventListener("abort", onAbort);
        reject(
          new ConnectionError(`exec stream ${url}: connection failed`, {
            code: "connection_failed",
          }),
        );
      }
    };
    ws.onmessage = (event) =>
      socket.onMessage(
        typeof event.data === "string" ? event.data : new Uint8Array(event.data as ArrayBuffer),
      );
    ws.onclose = (event) => {
      if (opened) socket.onClose(event.code, event.reason);
    };
  });
}
