import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";

const MiB = 1024 * 1024;

export type Kind =
  | "multipart"
  | "octet-stream"
  | "multipart+gzip"
  | "octet-stream+gzip"
  | "octet-stream over h2";

/**
 * An upload body of `bytes` (whole MiB) of incompressible bytes, counting what the transport has
 * pulled so far. Gzip bodies are one compressed block repeated (gzip members may be concatenated),
 * so the client spends no CPU compressing and moves as many bytes over the socket.
 */
export function uploadBody(
  kind: Kind,
  bytes: number,
): { body: Readable; headers: Record<string, string>; sent(): number } {
  const gzip = kind.endsWith("gzip");
  const block = gzip ? gzipSync(randomBytes(MiB), { level: 1 }) : randomBytes(MiB);
  const boundary = `----wrenn${randomBytes(8).toString("hex")}`;
  const multipart = kind.startsWith("multipart");
  const encode = (text: string) => (gzip ? gzipSync(text) : Buffer.from(text));
  const head = encode(
    multipart
      ? `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n`
      : "",
  );
  const tail = encode(multipart ? `\r\n--${boundary}--\r\n` : "");
  const blocks = bytes / MiB;
  let sent = 0;
  async function* chunks() {
    yield head;
    for (let n = 0; n < blocks; n++) {
      sent += MiB;
      yield block;
    }
    yield tail;
  }
  const headers: Record<string, string> = {
    "content-type": multipart
      ? `multipart/form-data; boundary=${boundary}`
      : "application/octet-stream",
    "content-length": String(head.length + blocks * block.length + tail.length),
  };
  if (gzip) headers["content-encoding"] = "gzip";
  return { body: Readable.from(chunks()), headers, sent: () => sent };
}
