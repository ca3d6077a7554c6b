import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/index.js";
import { newId, Store } from "../src/db/index.js";
import { type RunningServer, startServer } from "../src/serve.js";
import { startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";

// Throws random and boundary input at every route and checks that each answer is a JSON
// {code, message} with a 4xx status (or a 2xx for the rare input that happens to be valid), and
// that the server still works afterwards. Reproduce a failure with WRENN_FUZZ_SEED=<seed>.

const SEED = Number(process.env.WRENN_FUZZ_SEED ?? Date.now() % 2 ** 31);
const ROUNDS = Number(process.env.WRENN_FUZZ_ROUNDS ?? 150);

/** mulberry32: small, seedable, good enough to pick fuzz cases. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

type Route = { method: string; path: string; body: boolean };

/** Every API route; the fuzz test fails if the OpenAPI document lists one that is missing here. */
const ROUTES: Route[] = [
  { method: "GET", path: "/health", body: false },
  { method: "POST", path: "/v1/auth/signup", body: true },
  { method: "POST", path: "/v1/auth/login", body: true },
  { method: "GET", path: "/v1/auth/whoami", body: false },
  { method: "POST", path: "/v1/api-keys", body: true },
  { method: "GET", path: "/v1/api-keys", body: false },
  { method: "DELETE", path: "/v1/api-keys/{id}", body: false },
  { method: "POST", path: "/v1/sandboxes", body: true },
  { method: "GET", path: "/v1/sandboxes", body: false },
  { method: "GET", path: "/v1/sandboxes/{id}", body: false },
  { method: "DELETE", path: "/v1/sandboxes/{id}", body: false },
  { method: "POST", path: "/v1/sandboxes/{id}/pause", body: false },
  { method: "POST", path: "/v1/sandboxes/{id}/resume", body: true },
  { method: "POST", path: "/v1/sandboxes/{id}/ping", body: false },
  { method: "POST", path: "/v1/sandboxes/{id}/timeout", body: true },
  { method: "POST", path: "/v1/sandboxes/{id}/fork", body: true },
  { method: "PUT", path: "/v1/sandboxes/{id}/network", body: true },
  { method: "POST", path: "/v1/sandboxes/{id}/exec", body: true },
  { method: "PUT", path: "/v1/sandboxes/{id}/files", body: true },
  { method: "POST", path: "/v1/sandboxes/{id}/files", body: true },
  { method: "GET", path: "/v1/sandboxes/{id}/files", body: false },
  { method: "DELETE", path: "/v1/sandboxes/{id}/files", body: false },
  { method: "GET", path: "/v1/sandboxes/{id}/files/list", body: false },
  { method: "GET", path: "/v1/sandboxes/{id}/files/stat", body: false },
  { method: "POST", path: "/v1/sandboxes/{id}/files/mkdir", body: true },
  { method: "POST", path: "/v1/sandboxes/{id}/files/move", body: true },
  { method: "GET", path: "/v1/sandboxes/{id}/files/watch", body: false },
  { method: "GET", path: "/v1/sandboxes/{id}/exec/stream", body: false },
  { method: "GET", path: "/v1/sandboxes/{id}/processes", body: false },
  { method: "POST", path: "/v1/sandboxes/{id}/processes/{pid}/signal", body: true },
  { method: "POST", path: "/v1/sandboxes/{id}/processes/{pid}/stdin", body: true },
  { method: "POST", path: "/v1/sandboxes/{id}/processes/{pid}/close-stdin", body: false },
  { method: "GET", path: "/v1/sandboxes/{id}/metrics", body: false },
  { method: "POST", path: "/v1/snapshots", body: true },
  { method: "GET", path: "/v1/snapshots", body: false },
  { method: "DELETE", path: "/v1/snapshots/{id}", body: false },
  { method: "POST", path: "/v1/templates/builds", body: true },
  { method: "DELETE", path: "/v1/templates/builds/{id}", body: false },
  { method: "GET", path: "/v1/templates", body: false },
  { method: "DELETE", path: "/v1/templates/{name}", body: false },
  { method: "GET", path: "/v1/hosts", body: false },
  { method: "POST", path: "/v1/hosts/tokens", body: true },
  { method: "POST", path: "/v1/hosts/register", body: true },
  { method: "POST", path: "/v1/hosts/refresh", body: true },
  { method: "POST", path: "/v1/hosts/heartbeat", body: true },
  { method: "GET", path: "/v1/hosts/{id}", body: false },
  { method: "POST", path: "/v1/hosts/{id}/drain", body: false },
  { method: "DELETE", path: "/v1/hosts/{id}", body: false },
  { method: "GET", path: "/v1/sandboxes/{id}/ports/{port}", body: false },
  { method: "POST", path: "/v1/auth/logout", body: false },
  { method: "POST", path: "/v1/auth/password", body: true },
  { method: "POST", path: "/v1/teams/invites", body: false },
  { method: "GET", path: "/v1/teams/invites", body: false },
  { method: "DELETE", path: "/v1/teams/invites/{id}", body: false },
  { method: "GET", path: "/v1/teams/members", body: false },
  { method: "DELETE", path: "/v1/teams/members/{user_id}", body: false },
  { method: "GET", path: "/v1/quotas", body: false },
  { method: "PUT", path: "/v1/teams/{team_id}/quotas", body: true },
  { method: "POST", path: "/v1/sandboxes/{id}/ticket", body: false },
];

const QUERIES = [
  "?limit=0",
  "?limit=-1",
  "?limit=1e3",
  "?limit=99999999999999999999",
  "?state=running,,paused",
  "?state=%00",
  "?metadata=%",
  "?metadata=a%3D%00",
  "?metadata=%3D%3D%3D",
  "?cursor=%00",
  `?cursor=${Buffer.from('["\u0000","x"]').toString("base64url")}`,
  `?cursor=${"A".repeat(600)}`,
  "?limit=2&limit=3",
  "?path=",
  "?path=%00",
  "?path=/tmp/x",
  "?path=/tmp&depth=0",
  "?path=/tmp&depth=1e9",
  "?path=/tmp&depth=-1",
  "?path=/tmp/x&user=..%2F",
  "?path=/tmp/x&user=root",
  `?path=${"a".repeat(5000)}`,
  "?path=/a&path=/b",
];

const STRINGS = [
  "",
  " ",
  "a",
  "a@b.co",
  "longenough",
  "x".repeat(10_000),
  "é".repeat(300),
  "👩‍💻🧪".repeat(100),
  "\u0000",
  "a\u0000b@example.com",
  "\ud800",
  "\u202e\u200b",
  "../../etc/passwd",
  "'; drop table users; --",
  "%00",
  "__proto__",
  "constructor",
  "<script>alert(1)</script>",
  "null",
  "1e309",
];

const IDS = [
  "..",
  "..%2F..%2Fetc%2Fpasswd",
  "%2e%2e%2f%2e%2e%2f",
  "%00",
  "%E0%A4%A",
  "%",
  "a".repeat(5000),
  "ABCDEFGHIJKLMNOPQRST",
  "k3x9q2m7v1b8n4c6z0ta",
  "%F0%9F%98%80",
  "id;rm -rf",
  "id?x=1",
  "%20",
];

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)] as T;
}

function randomValue(rand: () => number, depth = 0): unknown {
  const kind = Math.floor(rand() * (depth > 3 ? 6 : 9));
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return pick(rand, [0, -1, 1.5, Number.MAX_SAFE_INTEGER, -(2 ** 63), 1e308]);
    case 3:
    case 4:
      return pick(rand, STRINGS);
    case 5:
      return String.fromCharCode(
        ...Array.from({ length: 1 + Math.floor(rand() * 40) }, () => Math.floor(rand() * 0xffff)),
      );
    case 6:
      return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    default: {
      const obj: Record<string, unknown> = {};
      const keys = [
        "email",
        "password",
        "name",
        "template",
        "snapshot",
        "vcpus",
        "memory_mb",
        "timeout_sec",
        "metadata",
        "envs",
      ];
      for (const key of [
        pick(rand, keys),
        pick(rand, keys),
        pick(rand, keys),
        pick(rand, STRINGS),
      ]) {
        if (rand() < 0.7) obj[key] = randomValue(rand, depth + 1);
      }
      return obj;
    }
  }
}

/** Bodies that are not JSON at all, or JSON in shapes nobody expects. */
function randomRawBody(rand: () => number): string {
  return pick(rand, [
    "",
    "{",
    '{"email": "a@b.co", "password": }',
    "[".repeat(200_000),
    `${"[".repeat(50_000)}${"]".repeat(50_000)}`,
    `{"a":${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}}`,
    "\u0000\u0001\u0002",
    "null",
    "[]",
    '"string"',
    "1e999999",
    '{"email":"a@b.co","email":"b@c.de","password":"longenough"}',
    '{"__proto__":{"admin":true},"name":"x"}',
    Buffer.from(Array.from({ length: 64 }, () => Math.floor(rand() * 256))).toString("latin1"),
  ]);
}

const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "application/problem+json",
  "text/plain",
  "multipart/form-data; boundary=x",
  "application/x-www-form-urlencoded",
  "",
  "application/json; charset=latin1",
];

async function assertErrorShape(res: Response, label: string): Promise<void> {
  if (res.status < 400) return;
  const text = await res.text();
  // This server has no agent: a *valid* lifecycle call on a sandbox is 503 unavailable, by design
  // (a HEAD answer has no body to say so).
  const agentless =
    res.status === 503 &&
    (/"code":"unavailable"/.test(text) || label.startsWith("HEAD")) &&
    /\/v1\/(sandboxes|snapshots)/.test(label);
  if (!agentless) expect(res.status, `${label}: ${text.slice(0, 200)}`).toBeLessThan(500);
  // The database's own refusal is only a safety net: validation must catch such text first.
  expect(text, label).not.toContain("unencodable characters");
  if (label.startsWith("HEAD")) return; // HEAD answers carry no body
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${label}: ${res.status} body is not JSON: ${text.slice(0, 200)}`);
  }
  expect(body, label).toEqual({ code: expect.any(String), message: expect.any(String) });
}

for (const engine of testEngines()) {
  describe.skipIf(engine.skipReason)(
    `fuzzed input on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    () => {
      let server: TestServer;
      let auth: Record<string, string>;
      let credentials: { email: string; password: string };
      let keyId: string;
      let sandboxId: string;

      beforeAll(async () => {
        console.info(
          `[fuzz] seed ${SEED} (set WRENN_FUZZ_SEED to reproduce), ${ROUNDS} rounds per route`,
        );
        server = await startTestServer(engine);
        const made = await server.newUser();
        ({ auth } = made);
        credentials = { email: made.email, password: made.password };
        const created = await server.call("POST", "/v1/api-keys", {
          json: { name: "keep" },
          headers: auth,
        });
        const body = (await created.json()) as { id: string; key: string };
        keyId = body.id;
        auth["x-api-key"] = body.key;
        const user = await server.services.accounts.authenticateToken(
          `${auth.authorization}`.slice(7),
        );
        sandboxId = newId();
        const now = new Date().toISOString();
        await new Store(server.database.handle.db, server.database.handle.dialect).sandboxes.insert(
          {
            id: sandboxId,
            teamId: user.teamId,
            hostId: null,
            template: "base",
            snapshotId: null,
            state: "running",
            vcpus: 1,
            memoryMb: 512,
            diskSizeMb: 1024,
            timeoutSec: 0,
            metadata: { a: "b" },
            createdAt: now,
            updatedAt: now,
            lastActiveAt: now,
            stoppedAt: null,
          },
        );
      });
      afterAll(async () => {
        await server?.cleanup();
      });

      it("covers every route in the OpenAPI document", async () => {
        const doc = (await (await server.call("GET", "/openapi.json")).json()) as {
          paths: Record<string, Record<string, unknown>>;
        };
        const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
          Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
        );
        expect(ROUTES.map((r) => `${r.method} ${r.path}`).sort()).toEqual(documented.sort());
      });

      for (const route of ROUTES) {
        it(`${route.method} ${route.path}: every bad input gets a JSON 4xx`, async () => {
          const rand = prng(SEED ^ route.path.length ^ route.method.charCodeAt(0));
          const statuses: Record<number, number> = {};
          for (let i = 0; i < ROUNDS; i++) {
            const headers: Record<string, string> = {};
            const authChoice = rand();
            if (authChoice < 0.5) Object.assign(headers, auth);
            else if (authChoice < 0.7)
              headers.authorization = pick(rand, [
                "Bearer",
                "Bearer x.y.z",
                `Bearer ${"A".repeat(20_000)}`,
                "Basic ?",
                "Bearer \u00ff\u00fe",
              ]);
            if (rand() < 0.2)
              headers["x-api-key"] = pick(rand, ["wrn_", "wrn_nope", "x".repeat(9000), "\u00e9"]);
            const contentType = pick(rand, CONTENT_TYPES);
            if (contentType) headers["content-type"] = contentType;
            const method =
              rand() < 0.85
                ? route.method
                : pick(rand, ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]);
            const id =
              rand() < 0.1
                ? route.path.includes("sandboxes")
                  ? sandboxId
                  : keyId
                : pick(rand, IDS);
            let path = route.path
              .replace("{id}", id)
              .replace("{team_id}", id)
              .replace("{port}", pick(rand, ["8080", "0", "65536", "x", "49983"]))
              .replace("{pid}", pick(rand, ["1", "0", "-1", "1.5", "abc", "4294967296", "%00"]));
            if (rand() < 0.3) path += pick(rand, QUERIES);
            if (rand() < 0.1) path += pick(rand, ["/", "//", "/..", "?x=%", "?id=1&id=2", "%2F"]);
            const hasBody = method !== "GET" && method !== "HEAD" && (route.body || rand() < 0.3);
            const body = !hasBody
              ? undefined
              : rand() < 0.7
                ? JSON.stringify(randomValue(rand))
                : randomRawBody(rand);
            const label = `${method} ${path.slice(0, 80)} body=${JSON.stringify(body?.slice(0, 80))} ct=${contentType} (seed ${SEED}, round ${i})`;
            const res = await server.app.request(path, { method, headers, body });
            statuses[res.status] = (statuses[res.status] ?? 0) + 1;
            await assertErrorShape(res, label);
          }
          console.info(`[fuzz] ${route.method} ${route.path} statuses ${JSON.stringify(statuses)}`);
          // Past authentication, into validation and the handlers: not everything bounced at the door.
          const authenticated = Object.entries(statuses).filter(([status]) => status !== "401");
          expect(authenticated.length).toBeGreaterThan(1);
          // A valid logout revoked the token: log in again.
          if (route.path === "/v1/auth/logout") {
            const login = await server.call("POST", "/v1/auth/login", { json: credentials });
            auth.authorization = `Bearer ${((await login.json()) as { token: string }).token}`;
          }
          // The key used for valid-id rounds may have been deleted by a valid DELETE: remake it.
          const again = await server.call("POST", "/v1/api-keys", {
            json: { name: "keep" },
            headers: auth,
          });
          const body = (await again.json()) as { id: string; key: string };
          keyId = body.id;
          auth["x-api-key"] = body.key;
        });
      }

      it("still works afterwards", async () => {
        expect((await server.call("GET", "/health")).status).toBe(200);
        const user = await server.newUser();
        expect((await server.call("GET", "/v1/api-keys", { headers: user.auth })).status).toBe(200);
      });
    },
  );
}

describe("malformed HTTP over a real socket", () => {
  let running: RunningServer;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "wrenn-fuzz-http-"));
    running = await startServer(
      loadConfig({
        WRENN_DATA_DIR: dataDir,
        WRENN_PORT: "0",
        WRENN_LOG_LEVEL: "silent",
        WRENN_BODY_LIMIT_BYTES: "4096",
      }),
    );
  });
  afterAll(async () => {
    await running?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Sends raw bytes, returns whatever comes back before the server closes. */
  function raw(payload: string): Promise<string> {
    const { hostname, port } = new URL(running.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => socket.end(payload));
      let out = "";
      socket.setEncoding("latin1");
      socket.on("data", (d) => {
        out += d;
      });
      socket.on("close", () => resolve(out));
      socket.on("error", reject);
      socket.setTimeout(5000, () => socket.destroy(new Error("no answer")));
    });
  }

  it("bounds a body by its declared length, or a chunked one as it arrives: 413 either way", async () => {
    const head =
      "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n";
    const body = JSON.stringify({ email: "a@b.co", password: "x".repeat(8000) });
    const declared = await raw(`${head}Content-Length: ${body.length}\r\n\r\n${body}`);
    const chunked = await raw(
      `${head}Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    );
    for (const answer of [declared, chunked]) {
      expect(answer.split(" ")[1], answer.slice(0, 200)).toBe("413");
      const error = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
      expect(error).toMatchObject({ code: "payload_too_large" });
    }
    // Within the bound (a declared length, as fetch sends it), the route reads the body: wrong
    // credentials, not a size error.
    const read = await fetch(`${running.url}/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "a@b.co", password: "longenough" }),
    });
    expect(read.status).toBe(401);
  });

  it.each([
    ["garbage request line", "HELLO\r\n\r\n"],
    ["bad header", "GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"],
    ["huge header", `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`],
    ["bad content-length", "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"],
    [
      "bad percent-encoding",
      "GET /v1/api-keys/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ],
    ["path traversal", "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"],
    [
      "WebSocket upgrade without a key",
      "GET /v1/sandboxes/x/exec/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    ],
    [
      "WebSocket upgrade elsewhere",
      "GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    ],
    [
      "truncated body",
      'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"email"',
    ],
  ])("%s → a JSON 4xx (or a closed connection), and the server lives", async (_name, payload) => {
    const answer = await raw(payload);
    if (answer) {
      const status = Number(answer.split(" ")[1]);
      expect(status, answer.slice(0, 200)).toBeGreaterThanOrEqual(400);
      expect(status, answer.slice(0, 200)).toBeLessThan(500);
      const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
      expect(JSON.parse(body)).toEqual({ code: expect.any(String), message: expect.any(String) });
    }
    expect((await fetch(`${running.url}/health`)).status).toBe(200);
  });
});
