import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";

export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface Listening {
  address: AddressInfo;
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `handler` over HTTP/1.1 and h2c (prior knowledge) on one port: the first bytes of each
 * connection say which (the HTTP/2 client preface), and the socket goes to that server.
 */
export async function listen(handler: NodeHandler, port: number, host: string): Promise<Listening> {
  const h1 = http.createServer({ keepAliveTimeout: 60_000 }, handler);
  const h2 = http2.createServer({}, handler);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    // Small Connect frames must not wait for Nagle (http.Server does this for its own sockets).
    socket.setNoDelay(true);
    socket.once("close", () => sockets.delete(socket));
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, PREFACE.length);
      const isH2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isH2 && head.length < PREFACE.length) return;
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      if (isH2) {
        // The http2 session reads what was unshifted itself.
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    address,
    url: `http://${shown}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        h1.closeIdleConnections();
        for (const socket of sockets) socket.destroy();
      }),
  };
}
