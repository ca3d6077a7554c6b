import { getEventListeners } from "node:events";
import { createServer, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { errorFromWire } from "../src/errors/index.js";
import * as src from "../src/index.js";

// The error family without a server: brands across copies of the package, the wire table, and
// the HTTP client's retry policy against a fake endpoint that answers 429/503 first.

const require = createRequire(import.meta.url);
/** The built CommonJS copy: a second, separately loaded copy of every class. */
const cjs = require("../dist/cjs/index.js") as typeof src;

describe("instanceof across copies", () => {
  it("holds between the CJS build and the ESM source, by class", () => {
    const err = new cjs.NotFoundError("gone", { code: "not_found", status: 404 });
    expect(err).toBeInstanceOf(src.NotFoundError);
    expect(err).toBeInstanceOf(src.WrennError);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(src.ConflictError);
    expect(new src.CommandExitError({ stdout: "", stderr: "", exitCode: 2 })).toBeInstanceOf(
      cjs.CommandExitError,
    );
    expect(new Error("plain")).not.toBeInstanceOf(src.WrennError);
    expect(null).not.toBeInstanceOf(src.WrennError);
    expect(err.name).toBe("NotFoundError");
  });
});

describe("the wire table", () => {
  it.each([
    [{ status: 401, code: "unauthenticated" }, src.AuthenticationError],
    [{ status: 400, code: "invalid_argument" }, src.InvalidArgumentError],
    [{ status: 404, code: "not_found" }, src.NotFoundError],
    [{ status: 409, code: "already_exists" }, src.ConflictError],
    [{ status: 409, code: "failed_precondition" }, src.ConflictError],
    [{ status: 409, code: "failed_precondition", inSandbox: true }, src.SandboxError],
    [{ status: 503, code: "unavailable", inSandbox: true }, src.SandboxError],
    [{ status: 504, code: "timeout" }, src.TimeoutError],
    [{ status: 429, code: "resource_exhausted", retryAfterMs: 1500 }, src.RateLimitError],
    [{ status: 507, code: "insufficient_storage" }, src.NotEnoughSpaceError],
    [{ status: 507 }, src.NotEnoughSpaceError],
    [{ status: 404 }, src.NotFoundError],
    [{ status: 500, code: "internal" }, src.WrennError],
  ] as const)("%o → %o", (wire, cls) => {
    const err = errorFromWire({ ...wire, message: "m", requestId: "r1" });
    expect(err).toBeInstanceOf(cls);
    expect(err.constructor).toBe(cls);
    expect(err).toMatchObject({ status: wire.status, requestId: "r1", message: "m" });
    if (err instanceof src.RateLimitError) expect(err.retryAfterMs).toBe(1500);
  });
});

describe("ApiClient retry policy", () => {
  /** A fake endpoint: answers each listed status once (with Retry-After), then 200. */
  async function flaky(statuses: number[]) {
    let calls = 0;
    const times: number[] = [];
    const http = createServer((req, res) => {
      times.push(performance.now());
      const status = statuses[calls++];
      if (status) {
        res.writeHead(status, { "content-type": "application/json", "retry-after": "0.2" });
        res.end(
          JSON.stringify({
            code:
              status === 429
                ? "resource_exhausted"
                : status === 507
                  ? "insufficient_storage"
                  : "unavailable",
            message: "busy",
          }),
        );
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: req.method }));
      }
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const port = (http.address() as { port: number }).port;
    const client = new src.ApiClient({ apiUrl: `http://127.0.0.1:${port}`, apiKey: "k" });
    return {
      client,
      calls: () => calls,
      times,
      close: () => new Promise<void>((resolve) => http.close(() => resolve())),
    };
  }

  it("retries idempotent calls on 429/503, waiting Retry-After", async () => {
    const fake = await flaky([429, 503]);
    try {
      await expect(fake.client.json({ method: "GET", path: "/x" })).resolves.toEqual({ ok: "GET" });
      expect(fake.calls()).toBe(3);
      // Retry-After: 0.2 s was honoured between attempts.
      expect((fake.times[1] ?? 0) - (fake.times[0] ?? 0)).toBeGreaterThanOrEqual(150);
    } finally {
      await fake.close();
    }
  });

  it("does not retry a full disk (507), even for an idempotent call", async () => {
    const fake = await flaky([507]);
    try {
      const err = await fake.client.json({ method: "GET", path: "/x" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(src.NotEnoughSpaceError);
      expect(fake.calls()).toBe(1);
    } finally {
      await fake.close();
    }
  });

  it("does not retry a POST; the typed error carries retryAfterMs", async () => {
    const fake = await flaky([429]);
    try {
      const err = await fake.client
        .json({ method: "POST", path: "/x", json: {} })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(src.RateLimitError);
      expect((err as src.RateLimitError).retryAfterMs).toBe(200);
      expect(fake.calls()).toBe(1);
    } finally {
      await fake.close();
    }
  });
});

describe("an answer that is not the API's JSON", () => {
  it("a proxy's HTML error page becomes a typed error worded as the page's text", async () => {
    const page =
      "<html>\r\n<head><title>502 Bad Gateway</title><style>body { width: 35em; }</style></head>\r\n" +
      "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    const http = createServer((_req, res) => {
      res.writeHead(502, { "content-type": "text/html" });
      res.end(page);
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const port = (http.address() as { port: number }).port;
    const client = new src.ApiClient({ apiUrl: `http://127.0.0.1:${port}`, apiKey: "k" });
    try {
      const err = await client
        .json({ method: "POST", path: "/v1/sandboxes", json: {} })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(src.WrennError);
      expect(err).toMatchObject({
        code: "unavailable",
        status: 502,
        message: "502 Bad Gateway 502 Bad Gateway nginx",
      });
    } finally {
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });
});

describe("ApiClient and the caller's signal", () => {
  it("holds no listener on a signal reused across calls, yet a body handed on still aborts", async () => {
    // /json answers at once; /ends streams a short body; /held sends a chunk and stays open.
    const held: ServerResponse[] = [];
    const http = createServer((req, res) => {
      if (req.url === "/json") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      } else {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        if (req.url === "/ends") res.end("all of it");
        else res.write("first", () => held.push(res));
      }
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const port = (http.address() as { port: number }).port;
    const client = new src.ApiClient({ apiUrl: `http://127.0.0.1:${port}`, apiKey: "k" });
    const stream = (path: string, signal: AbortSignal) =>
      client.send({ method: "GET", path, signal }, (res) => res.body as ReadableStream<Uint8Array>);
    try {
      const shutdown = new AbortController();
      for (let i = 0; i < 20; i++) {
        await client.json({ method: "GET", path: "/json", signal: shutdown.signal });
      }
      expect(getEventListeners(shutdown.signal, "abort")).toHaveLength(0);

      // A streamed body read to its end lets go of the signal too.
      const body = await stream("/ends", shutdown.signal);
      expect(await new Response(body).text()).toBe("all of it");
      expect(getEventListeners(shutdown.signal, "abort")).toHaveLength(0);

      // While a body is being read, the caller's signal still ends it.
      const reader = (await stream("/held", shutdown.signal)).getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toBe("first");
      const reason = new Error("shutting down");
      shutdown.abort(reason);
      await expect(reader.read()).rejects.toBe(reason);
    } finally {
      for (const res of held) res.destroy();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });
});
