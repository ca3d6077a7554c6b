import { type IncomingMessage, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { type WebSocket, WebSocketServer } from "ws";
import { ServerError } from "../../errors.js";
import type { Services } from "../../service/index.js";
import { ExecStreamSession } from "./exec-stream.js";
import { MAX_WS_PAYLOAD } from "./frames.js";

/** What the HTTP server hands its `upgrade` event to. */
export interface UpgradeHandler {
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Closes every open socket (1001) and stops the heartbeat. */
  close(): void;
}

export const EXEC_STREAM_PATH = /^\/v1\/sandboxes\/([^/]+)\/exec\/stream$/;
/** Sockets that miss a pong for this long are dropped (their process is detached). */
const HEARTBEAT_MS = 30_000;

/** A refusal before the upgrade: a plain HTTP answer with the API's `{code, message}` body. */
function refuse(socket: Duplex, err: ServerError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(err.toJSON());
  socket.end(
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ""}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `connection: close\r\n\r\n${body}`,
  );
}

/**
 * WebSockets of the API (today: the exec stream). Authentication (X-API-Key, or `ticket` in the
 * query since browsers cannot set headers on a WebSocket) and the sandbox check happen before the
 * upgrade, so those failures are ordinary HTTP errors.
 */
export function createUpgradeHandler(services: Services, logger: Logger): UpgradeHandler {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_WS_PAYLOAD,
    perMessageDeflate: false,
  });
  const alive = new WeakSet<WebSocket>();
  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) {
        ws.terminate();
        continue;
      }
      alive.delete(ws);
      ws.ping();
    }
  }, HEARTBEAT_MS);
  heartbeat.unref();

  async function accept(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    upgraded: () => void,
  ): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const match = EXEC_STREAM_PATH.exec(url.pathname);
    if (!match) throw new ServerError("not_found", `no WebSocket route for ${url.pathname}`);
    if (req.method !== "GET")
      throw new ServerError("method_not_allowed", `${req.method} is not allowed here; use GET`);
    const header = req.headers["x-api-key"];
    const key = typeof header === "string" ? header.trim() : undefined;
    const ticket = url.searchParams.get("ticket")?.trim();
    const sandboxId = match[1] ?? "";
    if (!key && !ticket)
      throw new ServerError(
        "unauthenticated",
        "send X-API-Key: <key>, or from a browser ?ticket=<ticket from POST /v1/sandboxes/{id}/ticket>",
      );
    // A browser's ticket: single-use, short-lived, for this sandbox only (no key in the URL).
    const teamId = key
      ? (await services.apiKeys.authenticate(key)).teamId
      : await services.tickets.redeem(ticket as string, sandboxId);
    const release = await services.quotas.acquire(teamId, "exec_streams");
    let processes: Awaited<ReturnType<typeof services.processes.open>>;
    try {
      processes = await services.processes.open(teamId, sandboxId);
    } catch (err) {
      release();
      throw err;
    }
    if (socket.destroyed) return release();
    wss.handleUpgrade(req, socket, head, (ws) => {
      upgraded(); // ws handles the socket's errors from here
      ws.once("close", release);
      alive.add(ws);
      ws.on("pong", () => alive.add(ws));
      new ExecStreamSession(ws, processes, logger, { sandboxId, teamId });
    });
  }

  return {
    handle(req, socket, head) {
      // Until ws owns the socket (and after a refusal), a reset must not become an unhandled error.
      const onError = () => socket.destroy();
      socket.on("error", onError);
      accept(req, socket, head, () => socket.off("error", onError)).catch((err: unknown) => {
        const failure = ServerError.from(err);
        if (failure.code === "internal") logger.error({ err }, "WebSocket upgrade failed");
        refuse(socket, failure);
      });
    },
    close() {
      clearInterval(heartbeat);
      for (const ws of wss.clients) {
        ws.close(1001, "server shutting down");
        // A client that never answers the close must not hold the server's shutdown.
        setTimeout(() => ws.terminate(), 1_000).unref();
      }
      wss.close();
    },
  };
}
