import { type IncomingMessage, type OutgoingHttpHeaders, STATUS_CODES } from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";

export interface TunnelTarget {
  host: string;
  port: number;
  /** Path and query on the sandbox's server. */
  path: string;
  /** The request's headers as they may reach the sandbox (hop-by-hop ones already gone). */
  headers: OutgoingHttpHeaders;
}

/** A plain HTTP answer on a socket that was never upgraded, then closed. */
export function refuseUpgrade(socket: Duplex, status: number, body: Record<string, unknown>): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}

/**
 * Sends an upgrade request (a WebSocket handshake) on to `target` over a fresh TCP connection and
 * then passes bytes both ways untouched: the sandbox's server answers the handshake itself (101,
 * or a refusal the client sees as is) and frames flow with the sockets' own backpressure. Either
 * side closing closes the other. Returns the upstream socket (its `close` ends the tunnel).
 */
export function tunnelUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: TunnelTarget,
  /** The connection failed: returns the 502's message for the client. */
  onUnreachable: (err: Error) => string,
): net.Socket {
  const upstream = net.connect(target.port, target.host);
  upstream.setNoDelay(true);
  let connected = false;
  const lines = [
    `${req.method ?? "GET"} ${target.path} HTTP/1.1`,
    `host: ${target.host}:${target.port}`,
  ];
  for (const [name, value] of Object.entries(target.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  lines.push("connection: Upgrade", `upgrade: ${req.headers.upgrade ?? "websocket"}`);
  upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
  if (head.length > 0) upstream.write(head);
  upstream.once("connect", () => {
    connected = true;
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  upstream.on("error", (err) => {
    if (connected) {
      socket.destroy();
      return;
    }
    refuseUpgrade(socket, 502, { code: "unavailable", message: onUnreachable(err) });
  });
  // A clean end reaches the client through the pipe; a broken one must break the client's too.
  upstream.on("close", (hadError) => {
    if (connected && hadError) socket.destroy();
  });
  socket.on("error", () => upstream.destroy());
  socket.on("close", () => upstream.destroy());
  return upstream;
}
