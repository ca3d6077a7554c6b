import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { idleClosedBy } from "../../test/fixtures/idle-close.js";
import { ControlPlane } from "./control-plane.js";

describe("control plane client", () => {
  let server: http.Server | undefined;

  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it("closes an idle keep-alive connection before the server does", async () => {
    const sockets: Socket[] = [];
    server = http.createServer((req, res) => {
      sockets.push(req.socket);
      req.resume();
      req.on("end", () => res.end("{}"));
    });
    // Announced to clients as `Keep-Alive: timeout=2`.
    server.keepAliveTimeout = 2_000;
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const cp = new ControlPlane({ serverUrl: `http://127.0.0.1:${port}` });
    try {
      await cp.post("/v1/hosts/heartbeat", {});
      const socket = sockets[0];
      if (!socket) throw new Error("the server saw no request");
      // Were it the server, a heartbeat sent at that moment would meet a reset socket.
      expect(await idleClosedBy(socket)).toBe("client");
    } finally {
      cp.close();
    }
  });
});
