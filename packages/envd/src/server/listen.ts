import http from "node:http";
import type http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Takes an HTTP/1.1 upgrade request (a WebSocket) and its socket, once parsed. */
export type UpgradeListener = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface Listener {
  /** The bound port (useful with port 0). */
  port: number;
  /** e.g. http://127.0.0.1:49983 */
  url: string;
  close(): Promise<void>;
}

const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Its presence is what counts (see the HTTP/1 hand-off); the HTTP server gets the same data. */
function keepParsingInJs(): void {}

/**
 * Serves HTTP/1.1 and cleartext HTTP/2 (prior knowledge, "h2c") on one port: the first bytes of
 * each connection decide which server parses it.
 */
export function listenHttp(
  handler: RequestHandler,
  options: {
    port: number;
    host?: string;
    /** PEM certificate and key: serve HTTPS (HTTP/1.1) instead of HTTP/1.1 + h2c. */
    tls?: { cert: string | Buffer; key: string | Buffer };
    /** HTTP/1.1 upgrade requests (WebSockets); without it Node closes their connection. */
    onUpgrade?: UpgradeListener;
  },
): Promise<Listener> {
  if (options.tls) return listenHttps(handler, { ...options, tls: options.tls });
  const h1 = http.createServer(handler as http.RequestListener);
  if (options.onUpgrade) h1.on("upgrade", options.onUpgrade);
  h1.keepAliveTimeout = 65_000;
  h1.headersTimeout = 66_000;
  // Streams (process output, downloads) may legitimately last for hours.
  h1.requestTimeout = 0;
  // Loaded at the first HTTP/2 connection: Node's http2 is a good part of envd's start-up
  // otherwise, and the agent speaks HTTP/1.1.
  let h2: Promise<http2.Http2Server> | undefined;
  const h2Server = () =>
    (h2 ??= import("node:http2").then(({ default: { createServer } }) =>
      createServer(
        handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
      ),
    ));
  const sockets = new Set<net.Socket>();

  const server = net.createServer((socket) => {
    // http.Server would set TCP_NODELAY itself, but it never sees the accept: without it, small
    // writes (stream events, unary replies) wait on Nagle + delayed ACK, ~40 ms each.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // Gather bytes until they either match the HTTP/2 preface whole or stop matching it.
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, h2Preface.length);
      const isH2 = head.subarray(0, n).equals(h2Preface.subarray(0, n));
      if (isH2 && head.length < h2Preface.length) return;
      socket.off("data", onData);
      if (isH2) {
        socket.pause();
        void h2Server().then((server) => server.emit("connection", replayed(socket, head)));
      } else {
        h1.emit("connection", socket);
        // Node's HTTP server reads a fresh socket's native handle in C++ and pauses it through
        // 'pause'/'resume' events. This socket was already read from JS, so stream bookkeeping
        // (a queued resume, a read-ahead) restarts the handle behind a paused socket and a
        // request body then fills memory whatever the disk's pace. A 'data' listener added after
        // the hand-off makes the server parse from the JS stream instead (Node's own rule; the
        // path every HTTPS connection takes), where pausing the socket stops the reads for sure.
        socket.on("data", keepParsingInJs);
        socket.unshift(head);
      }
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  });

  return serve(server, sockets, "http", options);
}

/** HTTPS (HTTP/1.1 over TLS) with the same listener contract; TLS loaded only when asked for. */
async function listenHttps(
  handler: RequestHandler,
  options: {
    port: number;
    host?: string;
    tls: { cert: string | Buffer; key: string | Buffer };
    onUpgrade?: UpgradeListener;
  },
): Promise<Listener> {
  const { default: https } = await import("node:https");
  const server = https.createServer(
    { cert: options.tls.cert, key: options.tls.key },
    handler as http.RequestListener,
  );
  if (options.onUpgrade) server.on("upgrade", options.onUpgrade);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  const sockets = new Set<net.Socket>();
  server.on("connection", (socket: net.Socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  return serve(server, sockets, "https", options);
}

function serve(
  server: net.Server,
  sockets: Set<net.Socket>,
  scheme: "http" | "https",
  options: { port: number; host?: string },
): Promise<Listener> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "0.0.0.0", () => {
      server.off("error", reject);
      const address = server.address() as net.AddressInfo;
      resolve({
        port: address.port,
        url: `${scheme}://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const socket of sockets) socket.destroy();
          }),
      });
    });
  });
}

/**
 * The socket as a stream that first yields the bytes already read from it. Node's HTTP/2 server
 * reads a net.Socket's native handle directly and would miss them, so it gets this instead.
 */
function replayed(socket: net.Socket, first: Buffer): Duplex {
  const stream = new Duplex({
    read: () => void socket.resume(),
    write: (chunk, encoding, callback) => void socket.write(chunk, encoding, callback),
    final: (callback) => void socket.end(callback),
    destroy: (err, callback) => {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  stream.push(first);
  socket.on("data", (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on("end", () => stream.push(null));
  socket.on("close", () => stream.destroy());
  socket.on("error", (err) => stream.destroy(err));
  return stream;
}
