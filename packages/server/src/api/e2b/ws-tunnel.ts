import { type IncomingMessage, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { agentRequest } from "../../hosts/agent-http.js";
import { upstreamHeaders } from "./envd-router.js";
import { type RouteAccess, routeOf } from "./route-access.js";

/** Takes upgrade requests for sandbox routes: true when it did (the request is its own now). */
export interface SandboxUpgrade {
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Cuts every open tunnel (shutdown). */
  close(): void;
}

/** Refuses before any upgrade: a plain HTTP answer in E2B's `{code, message}` shape. */
function refuse(
  socket: Duplex,
  status: number,
  message: string,
  extra: Record<string, unknown> = {},
): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ code: status, message, ...extra });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** The head of a response as it came, for the client socket. */
function rawHead(res: IncomingMessage, extra: string[] = []): string {
  const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ""}`];
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
  }
  return `${[...lines, ...extra].join("\r\n")}\r\n\r\n`;
}

/**
 * WebSockets (any HTTP/1.1 upgrade) through the sandbox routes, host name or E2B's headers: the
 * same checks as plain requests (`RouteAccess`, auto-resume included), then the handshake goes
 * to the sandbox's agent, which tunnels it to the port; once the sandbox's server answers 101,
 * bytes pass both ways untouched, with the sockets' backpressure, until either side closes.
 */
export function createSandboxUpgrade(options: {
  access: RouteAccess;
  domain: string | null;
  logger: Logger;
}): SandboxUpgrade {
  const { access, domain, logger } = options;
  const open = new Set<Duplex>();

  const tunnel = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const route = routeOf(req.headers, domain);
    if (!route) return;
    if ("error" in route) return refuse(socket, 400, route.error);
    const target = await access(route, req.headers, req.url ?? "/", req.method ?? "GET");
    if (!("host" in target)) return refuse(socket, target.status, target.message, target.extra);
    if (socket.destroyed) return;
    const upstream = agentRequest(target.host, target.path, {
      method: req.method ?? "GET",
      headers: {
        ...upstreamHeaders(req.headers, target.port),
        connection: "Upgrade",
        upgrade: String(req.headers.upgrade ?? "websocket"),
      },
    });
    upstream.on("upgrade", (res, upSocket, upHead) => {
      // The request's link to its host's give-up signal ended with the upgrade: the tunnel holds
      // its own, so a host the server gives up on (a frozen agent) does not hold it open.
      const giveUp = target.host.signal;
      const cut = () => {
        socket.destroy();
        upSocket.destroy();
      };
      if (giveUp?.aborted) return cut();
      giveUp?.addEventListener("abort", cut, { once: true });
      open.add(socket);
      upSocket.setNoDelay(true);
      socket.write(rawHead(res));
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSocket.write(head);
      upSocket.pipe(socket);
      socket.pipe(upSocket);
      upSocket.on("error", () => socket.destroy());
      upSocket.on("close", (hadError: boolean) => {
        if (hadError) socket.destroy();
      });
      socket.on("close", () => {
        giveUp?.removeEventListener("abort", cut);
        open.delete(socket);
        upSocket.destroy();
      });
    });
    // Not upgraded (the sandbox's server refused, or nothing listens): that answer, then close.
    upstream.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= 64 * 1024) chunks.push(chunk);
      });
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        res.rawHeaders = res.rawHeaders.filter((_, i, all) =>
          i % 2 === 1
            ? !/^(content-length|transfer-encoding|connection)$/i.test(all[i - 1] ?? "")
            : !/^(content-length|transfer-encoding|connection)$/i.test(all[i] ?? ""),
        );
        socket.end(
          Buffer.concat([
            Buffer.from(rawHead(res, [`content-length: ${body.length}`, "connection: close"])),
            body,
          ]),
        );
      });
      res.on("error", () => socket.destroy());
    });
    upstream.on("error", (err) => {
      logger.warn({ path: target.path, err: err.message }, "sandbox route: agent unreachable");
      refuse(socket, 502, "the sandbox's host did not answer");
    });
    socket.on("close", () => upstream.destroy());
    upstream.end();
  };

  return {
    handle(req, socket, head) {
      if (!routeOf(req.headers, domain)) return false;
      socket.on("error", () => socket.destroy());
      tunnel(req, socket, head).catch((err: unknown) => {
        logger.error({ err }, "sandbox route: upgrade failed");
        refuse(socket, 500, "internal error");
      });
      return true;
    },
    close() {
      for (const socket of open) socket.destroy();
      open.clear();
    },
  };
}
