import { randomBytes } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo, type Socket } from "node:net";
import { Readable } from "node:stream";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { endAfterBody, type Listener, listenHttp } from "@wrenn/envd";
import { Process } from "@wrenn/proto/process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentError, ERROR_CODE_HEADER } from "../src/errors.js";
import { silentLogger } from "../src/logger/index.js";
import { EnvdProxy, parseProxyPath } from "../src/proxy/index.js";
import type { SandboxInfo } from "../src/runtime/index.js";
import { idleClosedBy } from "./fixtures/idle-close.js";

// The proxy against a real HTTP server standing in for envd (on loopback): streaming both ways
// without buffering, errors as JSON, activity reported.
const GiB = 2 ** 30;
const chunk = Buffer.alloc(2 ** 20, 7);
const randomBodies = new Map(["a", "b", "c"].map((name) => [name, randomBytes(8 * 2 ** 20)]));

function zeros(total: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      sent += chunk.length;
      this.push(chunk);
    },
  });
}

describe("envd proxy", { timeout: 120_000 }, () => {
  let upstream: http.Server;
  let agent: Listener;
  let proxy: EnvdProxy;
  const activity: string[] = [];
  const sandboxes = new Map<string, SandboxInfo>();
  let hangClosedWith: (finished: boolean) => void = () => {};
  const hangClosed = new Promise<boolean>((resolve) => {
    hangClosedWith = resolve;
  });

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname === "/download") {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        zeros(Number(url.searchParams.get("bytes"))).pipe(res);
      } else if (url.pathname === "/random") {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.end(randomBodies.get(url.searchParams.get("name") ?? ""));
      } else if (url.pathname === "/upload") {
        let n = 0;
        req.on("data", (c: Buffer) => {
          n += c.length;
        });
        req.on("end", () => res.end(JSON.stringify({ bytes: n })));
      } else if (url.pathname === "/refuse") {
        // envd refusing an upload before reading it: the answer at once, the body's rest dropped.
        const body = JSON.stringify({ code: "failed_precondition", message: "refused" });
        res.writeHead(409, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        });
        res.write(body);
        endAfterBody(req, res);
      } else if (url.pathname === "/hang") {
        // A stream that never ends on its own; tells the test when the proxy let go of it.
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("first\n");
        res.once("close", () => hangClosedWith(res.writableFinished));
      } else if (url.pathname === "/break") {
        // envd dying mid-body: part of a chunked body, then the connection drops.
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("partial\n", () => setTimeout(() => req.socket.destroy(), 20));
      } else if (url.pathname === "/ticks") {
        // A server stream: one line every 50 ms, each must arrive before the next is written.
        res.writeHead(200, { "content-type": "text/plain" });
        let i = 0;
        const timer = setInterval(() => {
          res.write(`${i++}\n`);
          if (i === 5) {
            clearInterval(timer);
            res.end();
          }
        }, 50);
      } else {
        res.end(
          JSON.stringify({
            path: req.url,
            method: req.method,
            authorization: req.headers.authorization,
          }),
        );
      }
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    const port = (upstream.address() as AddressInfo).port;
    const info = (id: string, state: SandboxInfo["state"]): SandboxInfo => ({
      id,
      runtime: "test",
      template: "t",
      state,
      vcpus: 1,
      memoryMb: 1,
      diskSizeMb: 1,
      egress: { allowOut: [], denyOut: [] },
      timeoutSec: 0,
      metadata: {},
      allowInternetAccess: false,
      createdAt: new Date(),
      envdAddress: `127.0.0.1:${port}`,
      autoPaused: false,
    });
    sandboxes.set("sb1", info("sb1", "running"));
    sandboxes.set("sb2", info("sb2", "paused"));
    proxy = new EnvdProxy({
      lookup: (id) => {
        const s = sandboxes.get(id);
        if (!s) throw new AgentError("not_found", `sandbox ${id} not found`);
        return s;
      },
      onActivity: (id) => {
        activity.push(id);
        return () => {};
      },
      logger: silentLogger(),
    });
    agent = await listenHttp(
      (req, res) => {
        if (!proxy.handle(req, res)) {
          res.writeHead(418);
          res.end();
        }
      },
      { port: 0, host: "127.0.0.1" },
    );
  });

  afterAll(async () => {
    await agent?.close();
    proxy?.close();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  it("parses proxy paths", () => {
    expect(parseProxyPath("/sandboxes/abc/envd/files?path=/x")).toEqual({
      id: "abc",
      path: "/files?path=/x",
    });
    expect(parseProxyPath("/sandboxes/abc/envd")).toEqual({ id: "abc", path: "/" });
    expect(parseProxyPath("/sandboxes/abc/ports/8000/x?y=1")).toEqual({
      id: "abc",
      path: "/x?y=1",
      port: 8000,
    });
    expect(parseProxyPath("/sandboxes/abc/ports/8000")).toEqual({
      id: "abc",
      path: "/",
      port: 8000,
    });
    expect(parseProxyPath("/sandboxes/abc/ports/http/x")).toBeUndefined();
    expect(parseProxyPath("/sandboxes/abc/other")).toBeUndefined();
    expect(parseProxyPath("/wrenn.agent.v1.HostAgentService/ListSandboxes")).toBeUndefined();
  });

  it("forwards method, path and query, and counts as activity", async () => {
    const res = await fetch(`${agent.url}/sandboxes/sb1/envd/some/rpc?x=1`, {
      method: "POST",
      headers: { authorization: "Bearer agent-secret" },
    });
    // The agent's credentials stay with the agent.
    expect(await res.json()).toEqual({ path: "/some/rpc?x=1", method: "POST" });
    expect(activity).toContain("sb1");
  });

  it("makes in-process requests for a server in this process, and leaves the rest to HTTP", async () => {
    const before = activity.length;
    const req = proxy.request("/sandboxes/sb1/envd/upload?x=1", {
      method: "POST",
      headers: { Authorization: "Bearer agent-secret", "Content-Type": "application/octet-stream" },
    });
    if (!req) throw new Error("no in-process request for a running sandbox");
    const answered = bodyOf(req);
    // Streamed with backpressure like any request body: 64 MiB arrive whole.
    zeros(64 * 2 ** 20).pipe(req);
    expect(JSON.parse(await answered)).toEqual({ bytes: 64 * 2 ** 20 });
    expect(activity.slice(before)).toEqual(["sb1"]);
    // The agent's bearer stays with the agent here too.
    const echo = proxy.request("/sandboxes/sb1/envd/rpc", {
      method: "GET",
      headers: { authorization: "Bearer agent-secret" },
    });
    if (!echo) throw new Error("no in-process request for a running sandbox");
    echo.end();
    const echoed = await bodyOf(echo);
    expect(JSON.parse(echoed)).toEqual({ path: "/rpc", method: "GET" });
    // What the HTTP path must answer (its errors) or tunnel (upgrades) gets no request here.
    const none = { method: "GET", headers: {} };
    expect(proxy.request("/sandboxes/sb2/envd/health", none)).toBeUndefined();
    expect(proxy.request("/sandboxes/nope/envd/health", none)).toBeUndefined();
    expect(proxy.request("/sandboxes/BAD_ID/envd/health", none)).toBeUndefined();
    expect(proxy.request("/snapshots/x/archive", none)).toBeUndefined();
    expect(
      proxy.request("/sandboxes/sb1/ports/8000/ws", {
        method: "GET",
        headers: { connection: "Upgrade", upgrade: "websocket" },
      }),
    ).toBeUndefined();
  });

  it("reads envd's answers in pieces larger than 64 KiB, whole and unmixed across connections", async () => {
    // Two at once (each read goes through the one shared read buffer), then one on a kept-alive
    // connection. Each answer is held a moment first, so the kernel has more than 64 KiB queued.
    const download = async (name: string) => {
      const req = proxy.request(`/sandboxes/sb1/envd/random?name=${name}`, {
        method: "GET",
        headers: {},
      });
      if (!req) throw new Error("no in-process request for a running sandbox");
      req.end();
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        req.once("response", resolve);
        req.once("error", reject);
      });
      res.pause();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const chunks: Buffer[] = [];
      for await (const piece of res) chunks.push(piece as Buffer);
      return chunks;
    };
    const [a, b] = await Promise.all([download("a"), download("b")]);
    const c = await download("c");
    for (const [name, chunks] of Object.entries({ a, b, c })) {
      expect(Buffer.concat(chunks).equals(randomBodies.get(name)!)).toBe(true);
      expect(Math.max(...chunks.map((c) => c.length))).toBeGreaterThan(64 * 1024);
    }
  });

  it("answers a hostile envd's header flood or garbage with a JSON 502, and goes on serving", async () => {
    // Read a megabyte at a time, a flood reaches the parser in large pieces: it must still refuse it.
    const hostile = net.createServer((socket) => {
      socket.on("error", () => {});
      socket.once("data", (head: Buffer) => {
        if (head.includes("GET /flood")) {
          socket.write(`HTTP/1.1 200 OK\r\nx-junk: ${"a".repeat(4 * 2 ** 20)}`);
        } else socket.write(Buffer.alloc(2 * 2 ** 20));
      });
    });
    await new Promise<void>((resolve) => hostile.listen(0, "127.0.0.1", resolve));
    const { port } = hostile.address() as AddressInfo;
    sandboxes.set("sb3", { ...sandboxes.get("sb1")!, id: "sb3", envdAddress: `127.0.0.1:${port}` });
    try {
      for (const path of ["flood", "garbage"]) {
        const res = await fetch(`${agent.url}/sandboxes/sb3/envd/${path}`);
        expect(res.status).toBe(502);
        expect(await res.json()).toMatchObject({ code: "unavailable" });
      }
      const res = await fetch(`${agent.url}/sandboxes/sb1/envd/rpc`);
      expect(await res.json()).toEqual({ path: "/rpc", method: "GET" });
    } finally {
      sandboxes.delete("sb3");
      await new Promise((resolve) => hostile.close(resolve));
    }
  });

  it("answers unknown, paused and malformed sandboxes with JSON errors", async () => {
    const unknown = await fetch(`${agent.url}/sandboxes/nope/envd/health`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: "not_found" });
    const paused = await fetch(`${agent.url}/sandboxes/sb2/envd/health`);
    expect(paused.status).toBe(409);
    expect(await paused.json()).toMatchObject({ code: "failed_precondition" });
    const bad = await fetch(`${agent.url}/sandboxes/BAD_ID/envd/health`);
    expect(bad.status).toBe(400);
    // A port nothing listens on: said so, without the sandbox's address on the host's network.
    const closed = await fetch(`${agent.url}/sandboxes/sb1/ports/1/`);
    expect(closed.status).toBe(502);
    expect(await closed.json()).toEqual({
      code: "unavailable",
      message: "port 1 of sandbox sb1: nothing listens on it (connection refused)",
    });
    // The same for a WebSocket upgrade, which the proxy tunnels rather than forwards.
    const refused = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
      const req = http.request(`${agent.url}/sandboxes/sb1/ports/1/ws`, {
        headers: { connection: "Upgrade", upgrade: "websocket" },
      });
      req.once("response", async (res) => {
        let body = "";
        for await (const chunk of res) body += chunk;
        resolve({ status: res.statusCode, body });
      });
      req.once("upgrade", () => reject(new Error("upgraded to a closed port")));
      req.once("error", reject);
      req.end();
    });
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.body)).toEqual({
      code: "unavailable",
      message: "port 1 of sandbox sb1: nothing listens on it (connection refused)",
    });
    // A Connect stream reads errors only from its end-of-stream message, not from the status.
    for (const [id, code] of [
      ["sb2", Code.FailedPrecondition],
      ["nope", Code.NotFound],
    ] as const) {
      const client = createClient(
        Process,
        createConnectTransport({
          baseUrl: `${agent.url}/sandboxes/${id}/envd`,
          httpVersion: "1.1",
        }),
      );
      const started = (async () => {
        for await (const _ of client.start({ process: { cmd: "true" } }));
      })();
      const err = await started.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code, rawMessage: expect.stringContaining(id) });
      expect((err as ConnectError).metadata.get(ERROR_CODE_HEADER)).toBe(
        code === Code.NotFound ? "not_found" : "failed_precondition",
      );
    }
  });

  it("forwards HTTP/2 (h2c) requests to the HTTP/1.1 envd", async () => {
    const session = http2.connect(agent.url);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/sandboxes/sb1/envd/rpc?q=2",
        });
        let text = "";
        stream.on("data", (c: Buffer) => {
          text += c;
        });
        stream.on("end", () => resolve(text));
        stream.on("error", reject);
        stream.end("payload");
      });
      expect(JSON.parse(body)).toEqual({ path: "/rpc?q=2", method: "POST" });
    } finally {
      session.close();
    }
  });

  it("streams each chunk as it comes", async () => {
    const res = await fetch(`${agent.url}/sandboxes/sb1/envd/ticks`);
    const reader = res.body!.getReader();
    const arrivals: number[] = [];
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
      arrivals.push(performance.now());
    }
    // Five writes 50 ms apart arrive as (about) five separate reads, not one buffered body.
    expect(arrivals.length).toBeGreaterThanOrEqual(4);
  });

  it("keeps one connection each way across 50 calls, streamed or not", async () => {
    let upstreamConnections = 0;
    const countConnection = () => upstreamConnections++;
    upstream.on("connection", countConnection);
    const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const clientSockets = new Set<unknown>();
    try {
      for (let i = 0; i < 50; i++) {
        // Alternately a chunked stream and a plain body: a response must never leave the socket
        // it answered on unusable (still corked) for the next request on it.
        const path = i % 2 ? "download?bytes=1048576" : "rpc";
        const bytes = await new Promise<number>((resolve, reject) => {
          http
            .get(`${agent.url}/sandboxes/sb1/envd/${path}`, { agent: client }, (res) => {
              clientSockets.add(res.socket);
              let n = 0;
              res.on("data", (c: Buffer) => {
                n += c.length;
              });
              res.on("end", () => resolve(n));
              res.on("error", reject);
            })
            .on("error", reject);
        });
        if (i % 2) expect(bytes).toBe(2 ** 20);
      }
    } finally {
      client.destroy();
      upstream.off("connection", countConnection);
    }
    expect(clientSockets.size).toBe(1);
    // At most one new connection to envd: the proxy may have had none idle when this began.
    expect(upstreamConnections).toBeLessThanOrEqual(1);
  });

  it("hands on an answer given before the whole body, and keeps reading the body for the next request", {
    timeout: 30_000,
  }, async () => {
    // As the server sends uploads: keep-alive, one socket, so the next request follows the body.
    const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const call = (path: string, headers: http.OutgoingHttpHeaders = {}, body?: Buffer) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = http.request(
          `${agent.url}/sandboxes/sb1/envd/${path}`,
          { method: body ? "POST" : "GET", agent: client, headers },
          (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => {
              text += c;
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    const body = Buffer.alloc(16 * 2 ** 20, 3);
    try {
      for (let round = 0; round < 3; round++) {
        const refused = await call("refuse", {}, body);
        expect(refused.status).toBe(409);
        expect(JSON.parse(refused.text)).toMatchObject({ code: "failed_precondition" });
        // On the same connection, behind the refused body's rest.
        const next = await call("rpc");
        expect(next.status).toBe(200);
        expect(JSON.parse(next.text)).toMatchObject({ path: "/rpc", method: "GET" });
      }
      // A client that closes after each answer gets it whole too, never a reset.
      for (let round = 0; round < 3; round++) {
        const refused = await call("refuse", { connection: "close" }, body);
        expect(refused.status).toBe(409);
      }
    } finally {
      client.destroy();
    }
  });

  it("closes an idle connection to envd before envd's keep-alive does", async () => {
    // An envd that announces a short keep-alive (`Keep-Alive: timeout=2`).
    let seen: Socket | undefined;
    const short = http.createServer((req, res) => {
      seen = req.socket;
      res.end("{}");
    });
    short.keepAliveTimeout = 2_000;
    await new Promise<void>((resolve) => short.listen(0, "127.0.0.1", resolve));
    const sb1 = sandboxes.get("sb1") as SandboxInfo;
    sandboxes.set("sb3", {
      ...sb1,
      id: "sb3",
      envdAddress: `127.0.0.1:${(short.address() as AddressInfo).port}`,
    });
    try {
      const res = await fetch(`${agent.url}/sandboxes/sb3/envd/rpc`, { method: "POST" });
      expect(res.status).toBe(200);
      await res.text();
      if (!seen) throw new Error("envd saw no request");
      // Were it envd, a call sent at that moment would meet a reset socket ("socket hang up").
      expect(await idleClosedBy(seen)).toBe("client");
    } finally {
      sandboxes.delete("sb3");
      short.closeAllConnections();
      await new Promise((resolve) => short.close(resolve));
    }
  });

  it("ends the envd call when the client goes away, and breaks the client's when envd does", async () => {
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${agent.url}/sandboxes/sb1/envd/hang`, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", (err) => {
        if (!req.destroyed) reject(err);
      });
    });
    // Closed from the proxy's side, not finished by the stream itself.
    expect(await hangClosed).toBe(false);

    const outcome = await new Promise<string>((resolve) => {
      http
        .get(`${agent.url}/sandboxes/sb1/envd/break`, (res) => {
          res.resume();
          res.on("end", () => resolve("end"));
          res.on("error", () => resolve("error"));
          res.on("aborted", () => resolve("error"));
        })
        .on("error", () => resolve("error"));
    });
    expect(outcome).toBe("error");
  });

  it("moves 1 GiB each way without growing its memory", async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    try {
      const down = await new Promise<number>((resolve, reject) => {
        http
          .get(`${agent.url}/sandboxes/sb1/envd/download?bytes=${GiB}`, (res) => {
            let n = 0;
            res.on("data", (c: Buffer) => {
              n += c.length;
            });
            res.on("end", () => resolve(n));
            res.on("error", reject);
          })
          .on("error", reject);
      });
      expect(down).toBe(GiB);
      const up = await new Promise<string>((resolve, reject) => {
        const req = http.request(
          `${agent.url}/sandboxes/sb1/envd/upload`,
          { method: "POST" },
          (res) => {
            let body = "";
            res.on("data", (c: Buffer) => {
              body += c;
            });
            res.on("end", () => resolve(body));
          },
        );
        req.on("error", reject);
        zeros(GiB).pipe(req);
      });
      expect(JSON.parse(up)).toEqual({ bytes: GiB });
    } finally {
      clearInterval(sample);
    }
    // Test client, proxy and upstream share this process: all three together stay far below 1 GiB.
    expect(peak - before).toBeLessThan(200 * 2 ** 20);
  });
});

/** The answer's body to a request made in-process, as text. */
function bodyOf(req: http.ClientRequest): Promise<string> {
  return new Promise((resolve, reject) => {
    req.once("response", (res) => {
      let text = "";
      res.on("data", (c: Buffer) => {
        text += c;
      });
      res.on("end", () => resolve(text));
    });
    req.once("error", reject);
  });
}
