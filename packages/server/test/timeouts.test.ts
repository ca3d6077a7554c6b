import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HttpListener, listenApp } from "../src/serve.js";
import { startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";

// Issue #13 finding 9: no whole-request limit (uploads past Node's 300 s default), but headers
// must still arrive within WRENN_HEADERS_TIMEOUT_MS.

const sqlite = testEngines().find((e) => e.name === "sqlite");

describe.skipIf(!sqlite)("request timeouts", () => {
  let server: TestServer;
  let http: HttpListener;

  beforeAll(async () => {
    server = await startTestServer(sqlite as NonNullable<typeof sqlite>, {
      WRENN_HEADERS_TIMEOUT_MS: "1000",
    });
    http = await listenApp(server.app, { ...server.config, port: 0 }, pino({ level: "silent" }));
  });
  afterAll(async () => {
    await http?.close();
    await server?.cleanup();
  });

  const port = () => Number(new URL(http.url).port);

  it("no whole-request timeout; headers are bounded", () => {
    expect(http.http.requestTimeout).toBe(0);
    expect(http.http.headersTimeout).toBe(1000);
  });

  it("cuts a client that never finishes its headers", async () => {
    const socket = connect(port(), "127.0.0.1");
    const closed = new Promise<string>((resolve) => {
      let got = "";
      socket.on("data", (d) => {
        got += d.toString();
      });
      socket.on("close", () => resolve(got));
    });
    socket.write("GET /health HTTP/1.1\r\nHost: x\r\n");
    const drip = setInterval(() => socket.write("X-Slow: 1\r\n"), 200);
    const outcome = await Promise.race([closed, sleep(10_000).then(() => "still open")]);
    clearInterval(drip);
    socket.destroy();
    expect(outcome).not.toBe("still open");
  });

  it("lets a body take longer than the headers timeout", async () => {
    const body = JSON.stringify({ email: "slow@example.com", password: "x".repeat(64) });
    const socket = connect(port(), "127.0.0.1");
    const answer = new Promise<string>((resolve) => {
      let got = "";
      socket.on("data", (d) => {
        got += d.toString();
      });
      socket.on("close", () => resolve(got));
      socket.on("error", () => resolve(got));
    });
    socket.write(
      `POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    );
    // Three seconds of body, three times the headers timeout.
    const chunks = body.match(/.{1,10}/g) ?? [];
    for (const chunk of chunks) {
      socket.write(chunk);
      await sleep(3_000 / chunks.length);
    }
    expect(await answer).toMatch(/^HTTP\/1\.1 401/);
  });

  it("keeps an idle keep-alive connection open longer than clients keep theirs", async () => {
    // Node's agent and undici close idle connections after about 4-5 s of their own; a server
    // that closes first races their next request on that socket (ECONNRESET, "socket hang up").
    const socket = connect(port(), "127.0.0.1");
    let got = "";
    socket.on("data", (d) => {
      got += d.toString();
    });
    socket.on("error", () => {});
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    try {
      const request = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
      socket.write(request);
      await until(() => /^HTTP\/1\.1 200/.test(got));
      expect(got).toMatch(/keep-alive: timeout=(\d+)/i);
      expect(Number(/keep-alive: timeout=(\d+)/i.exec(got)?.[1])).toBeGreaterThanOrEqual(60);
      // Idle past Node's default keepAliveTimeout (5 s) and the headers timeout (1 s here).
      const outcome = await Promise.race([closed.then(() => "closed"), sleep(6_500)]);
      expect(outcome).not.toBe("closed");
      got = "";
      socket.write(request);
      await until(() => /^HTTP\/1\.1 200/.test(got));
    } finally {
      socket.destroy();
    }
  });
});

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for an answer");
    await sleep(20);
  }
}
