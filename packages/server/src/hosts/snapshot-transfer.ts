import type { IncomingMessage } from "node:http";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ServerError } from "../errors.js";
import type { AgentHost } from "../service/sandbox-types.js";
import { agentRequest, responseOf } from "./agent-http.js";

/** Progress is reported after each this many bytes. */
const PROGRESS_EVERY = 64 * 2 ** 20;

async function bodyText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8").slice(0, 500);
}

/**
 * Streams a snapshot's archive from the agent that holds it into another one (never buffered
 * whole); returns the bytes copied. The target installs it only once the stream is complete, so
 * a broken copy leaves nothing behind. A target that already holds it counts as done.
 */
export async function copySnapshot(
  source: AgentHost,
  target: AgentHost,
  name: string,
  onProgress: (bytes: number) => void,
): Promise<number> {
  const path = `/snapshots/${encodeURIComponent(name)}/archive`;
  const download = agentRequest(source, path, { method: "GET" });
  download.end();
  const from = await responseOf(download).catch((err: unknown) => {
    throw new ServerError("unavailable", `snapshot copy: source host unreachable`, { cause: err });
  });
  if (from.statusCode !== 200) {
    // The agent's own words stay in the log (as the cause), not in what clients see.
    const detail = await bodyText(from);
    throw new ServerError("unavailable", `snapshot copy: source host answered ${from.statusCode}`, {
      cause: new Error(detail),
    });
  }
  const headers: Record<string, string> = { "content-type": "application/x-tar" };
  const meta = from.headers["x-wrenn-snapshot"];
  if (typeof meta === "string") headers["x-wrenn-snapshot"] = meta;
  const length = from.headers["content-length"];
  if (typeof length === "string") headers["content-length"] = length;
  else headers["transfer-encoding"] = "chunked";

  let copied = 0;
  let reported = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      copied += chunk.length;
      if (copied - reported >= PROGRESS_EVERY) {
        reported = copied;
        onProgress(copied);
      }
      done(null, chunk);
    },
  });
  const upload = agentRequest(target, path, { method: "PUT", headers });
  const answered = responseOf(upload);
  answered.catch(() => {}); // awaited below; the pipeline reports a broken upload first
  await pipeline(from, counter, upload).catch((err: unknown) => {
    throw new ServerError("unavailable", "snapshot copy broke mid-stream", { cause: err });
  });
  const to = await answered.catch((err: unknown) => {
    throw new ServerError("unavailable", "snapshot copy: target host unreachable", {
      cause: err,
    });
  });
  if (to.statusCode === 201 || to.statusCode === 409) {
    to.resume();
    return copied;
  }
  const detail = await bodyText(to);
  throw new ServerError("unavailable", `snapshot copy: target host answered ${to.statusCode}`, {
    cause: new Error(detail),
  });
}
