import WebSocket from "ws";
import { exampleTestLookup } from "./e2b-server.js";

/**
 * A server the sandbox runs on port 8000 with node alone: `/` says hello; `/stream` sends a
 * first line and holds the response until `/release`; an upgrade is a WebSocket (RFC 6455, text
 * frames under 126 bytes) that greets with its path and echoes each message.
 */
export const SERVICE = `
const http = require("http"), crypto = require("crypto");
let release = () => {};
const server = http.createServer((q, s) => {
  if (q.url === "/stream") {
    s.writeHead(200, { "content-type": "text/plain" });
    s.write("first\\n");
    release = () => s.end("second\\n");
    return;
  }
  if (q.url === "/release") { release(); s.end("released"); return; }
  s.end("hello " + q.url);
});
server.on("upgrade", (q, sock) => {
  const accept = crypto.createHash("sha1")
    .update(q.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  sock.write("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n" +
    "Sec-WebSocket-Accept: " + accept + "\\r\\n\\r\\n");
  const send = (text) => { const b = Buffer.from(text); sock.write(Buffer.concat([Buffer.from([0x81, b.length]), b])); };
  send("hello " + q.url);
  let buf = Buffer.alloc(0);
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 6) {
      const op = buf[0] & 0x0f, len = buf[1] & 0x7f;
      if (buf.length < 6 + len) break;
      const mask = buf.subarray(2, 6);
      const data = Buffer.from(buf.subarray(6, 6 + len)).map((x, i) => x ^ mask[i % 4]);
      buf = buf.subarray(6 + len);
      if (op === 8) { sock.end(Buffer.from([0x88, 0])); return; }
      if (op === 1) send("echo " + data.toString());
    }
  });
  sock.on("error", () => {});
});
server.listen(8000);
`;

/** A WebSocket whose messages queue from the start (the greeting may come with the 101). */
export interface OpenSocket {
  ws: WebSocket;
  /** The next text message. */
  next(): Promise<string>;
}

/** Opens a WebSocket, or rejects with the HTTP status of a refused handshake. */
export function openSocket(url: string, headers: Record<string, string> = {}): Promise<OpenSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, lookup: exampleTestLookup as never });
    const queued: string[] = [];
    const waiting: ((text: string) => void)[] = [];
    ws.on("message", (data) => {
      const text = String(data);
      const waiter = waiting.shift();
      if (waiter) waiter(text);
      else queued.push(text);
    });
    const next = () =>
      new Promise<string>((done) => {
        const text = queued.shift();
        if (text !== undefined) done(text);
        else waiting.push(done);
      });
    ws.once("open", () => resolve({ ws, next }));
    ws.once("unexpected-response", (_req, res) => {
      reject(new Error(`handshake refused: ${res.statusCode}`));
      ws.terminate();
    });
    ws.once("error", reject);
  });
}
