import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp, type ServerApp } from "../../src/api/index.js";
import { loadConfig, type ServerConfig } from "../../src/config/index.js";
import type { TestDatabase, TestEngine } from "./databases.js";

/** An in-process server over a fresh database of one engine, with JSON request helpers. */
export interface TestServer extends ServerApp {
  config: ServerConfig;
  database: TestDatabase;
  /** `app.request` with a JSON body and optional headers. */
  call(
    method: string,
    path: string,
    options?: { json?: unknown; headers?: Record<string, string> },
  ): Promise<Response>;
  /** Signs up and logs in a fresh user; returns their bearer headers and ids. */
  newUser(): Promise<{
    email: string;
    password: string;
    userId: string;
    teamId: string;
    auth: Record<string, string>;
  }>;
  cleanup(): Promise<void>;
}

let users = 0;

/** Signs a fresh user up (with their own team) and returns a new API key's header for it. */
export async function newTeamKey(app: ServerApp["app"]): Promise<Record<string, string>> {
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await app.request(path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, string>;
  };
  const email = `u${++users}-${Date.now()}@example.com`;
  const password = "correct horse battery";
  await post("/v1/auth/signup", { email, password });
  const { token } = await post("/v1/auth/login", { email, password });
  const { key } = await post("/v1/api-keys", { name: "k" }, { authorization: `Bearer ${token}` });
  return { "x-api-key": key ?? "" };
}

export async function startTestServer(
  engine: TestEngine,
  env: Record<string, string> = {},
): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "wrenn-server-"));
  const database = await engine.create();
  const config = loadConfig({ WRENN_DATA_DIR: dataDir, ...env });
  const server = await createApp({ db: database.handle, config });
  const call: TestServer["call"] = async (method, path, options = {}) =>
    server.app.request(path, {
      method,
      headers: {
        ...(options.json === undefined ? {} : { "content-type": "application/json" }),
        ...options.headers,
      },
      body: options.json === undefined ? undefined : JSON.stringify(options.json),
    });
  return {
    ...server,
    config,
    database,
    call,
    async newUser() {
      const email = `user${++users}-${Date.now()}@example.com`;
      const password = "correct horse battery";
      const signup = await call("POST", "/v1/auth/signup", { json: { email, password } });
      if (signup.status !== 201)
        throw new Error(`signup failed: ${signup.status} ${await signup.text()}`);
      const login = await call("POST", "/v1/auth/login", { json: { email, password } });
      const body = (await login.json()) as { token: string; user_id: string; team_id: string };
      return {
        email,
        password,
        userId: body.user_id,
        teamId: body.team_id,
        auth: { authorization: `Bearer ${body.token}` },
      };
    },
    async cleanup() {
      await database.cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
