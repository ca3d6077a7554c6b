import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { Duplex } from "node:stream";

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface Listener {
  /** The bound port (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

const h2Preface = Buffer.from("PRI * HTTP/2.0");

/**
 * Serves HTTP/1.1 and cleartext HTTP/2 (prior knowledge, "h2c") on one port: the first bytes of
 * each connection decide which server parses it.
 */
export function listenHttp(
  handler: RequestHandler,
  options: { port: number; host?: string },
): Promise<Listener> {
  const h1 = http.createServer(handler as http.RequestListener);
  h1.keepAliveTimeout = 65_000;
  h1.headersTimeout = 66_000;
  // Streams (process output, downloads) may legitimately last for hours.
  h1.requestTimeout = 0;
  const h2 = http2.createServer(
    handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  const sockets = new Set<net.Socket>();

  const server = net.createServer((socket) => {
    // http.Server would set TCP_NODELAY itself, but it never sees the accept: without it, small
    // writes (stream events, unary replies) wait on Nagle + delayed ACK, ~40 ms each.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      const head = chunk.subarray(0, h2Preface.length);
      if (head.equals(h2Preface.subarray(0, head.length))) {
        h2.emit("connection", replayed(socket, chunk));
      } else {
        socket.unshift(chunk);
        h1.emit("connection", socket);
        socket.resume();
      }
    });
    socket.on("error", () => socket.destroy());
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "0.0.0.0", () => {
      server.off("error", reject);
      const address = server.address() as net.AddressInfo;
      resolve({
        port: address.port,
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
