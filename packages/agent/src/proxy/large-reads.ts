import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";

/** The most one read of an envd connection takes: libuv's own reads take 64 KiB. */
const READ_BYTES = 1024 * 1024;
// One buffer for every connection: each read is copied out of it before the next can happen.
const readBuffer = Buffer.allocUnsafe(READ_BYTES);

/**
 * An HTTP agent whose connections read up to 1 MiB at a time. A download relayed from envd then
 * takes a sixteenth of the reads, parser calls and writes it took in 64 KiB pieces, which were
 * most of the relay's CPU.
 */
export class LargeReadAgent extends http.Agent {
  override createConnection(options: http.ClientRequestArgs): Duplex {
    const socket: net.Socket = net.createConnection({
      ...(options as net.TcpNetConnectOpts),
      onread: {
        buffer: readBuffer,
        // Handed on as the socket's own reads are: push's false (a full buffer) pauses it.
        callback: (bytes, buffer) => socket.push(Buffer.from(buffer.subarray(0, bytes))),
      },
    });
    return socket;
  }
}
