import { statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadJwtSecret, TokenIssuer } from "../src/auth/index.js";
import { startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";

async function expectError(res: Response, status: number, code: string, mentions?: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/application\/json/);
  const body = (await res.json()) as { code: string; message: string };
  expect(body.code).toBe(code);
  expect(typeof body.message).toBe("string");
  if (mentions) expect(body.message).toContain(mentions);
}

for (const engine of testEngines()) {
  describe.skipIf(engine.skipReason)(
    `API on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    () => {
      let server: TestServer;

      beforeAll(async () => {
        server = await startTestServer(engine, { WRENN_BODY_LIMIT_BYTES: "4096" });
      });
      afterAll(async () => {
        await server?.cleanup();
      });

      describe("signup and login", () => {
        it("signs up a user with a team, once per email (case-insensitive)", async () => {
          const res = await server.call("POST", "/v1/auth/signup", {
            json: { email: "Grace@Example.com", password: "longenough" },
          });
          expect(res.status).toBe(201);
          const body = await res.json();
          expect(body).toEqual({
            id: expect.stringMatching(/^[a-z][a-z0-9]{19}$/),
            email: "grace@example.com",
            team_id: expect.stringMatching(/^[a-z][a-z0-9]{19}$/),
            created_at: expect.any(String),
          });
          const again = await server.call("POST", "/v1/auth/signup", {
            json: { email: "grace@EXAMPLE.com", password: "otherpassword" },
          });
          await expectError(again, 409, "already_exists");
        });

        it("names the invalid field", async () => {
          await expectError(
            await server.call("POST", "/v1/auth/signup", {
              json: { email: "nope", password: "longenough" },
            }),
            400,
            "invalid_argument",
            "email",
          );
          await expectError(
            await server.call("POST", "/v1/auth/signup", {
              json: { email: "a@b.co", password: "short" },
            }),
            400,
            "invalid_argument",
            "password",
          );
        });

        it("logs in with the right password only, same answer for unknown users", async () => {
          const ok = await server.call("POST", "/v1/auth/login", {
            json: { email: "grace@example.com", password: "longenough" },
          });
          expect(ok.status).toBe(200);
          const body = (await ok.json()) as Record<string, string>;
          expect(body.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
          expect(Date.parse(body.expires_at as string)).toBeGreaterThan(Date.now());
          expect(body.user_id).toMatch(/^[a-z]/);
          expect(body.team_id).toMatch(/^[a-z]/);

          const wrong = await server.call("POST", "/v1/auth/login", {
            json: { email: "grace@example.com", password: "wrongpassword" },
          });
          await expectError(wrong, 401, "unauthenticated", "invalid email or password");
          const unknown = await server.call("POST", "/v1/auth/login", {
            json: { email: "nobody@example.com", password: "wrongpassword" },
          });
          await expectError(unknown, 401, "unauthenticated", "invalid email or password");
        });
      });

      describe("bearer tokens", () => {
        it("reject missing, garbled, foreign and expired tokens with 401", async () => {
          const user = await server.newUser();
          await expectError(await server.call("GET", "/v1/api-keys"), 401, "unauthenticated");
          for (const authorization of [
            "Bearer",
            "Bearer garbage",
            "Basic Zm9vOmJhcg==",
            `${user.auth.authorization}`.slice(0, -2),
          ]) {
            await expectError(
              await server.call("GET", "/v1/api-keys", { headers: { authorization } }),
              401,
              "unauthenticated",
            );
          }
          const foreign = new TokenIssuer("another server's secret, long enough", 3600);
          const { token: foreignToken } = await foreign.sign({
            userId: user.userId,
            teamId: user.teamId,
          });
          await expectError(
            await server.call("GET", "/v1/api-keys", {
              headers: { authorization: `Bearer ${foreignToken}` },
            }),
            401,
            "unauthenticated",
          );
          const secret = await loadJwtSecret(undefined, server.config.dataDir);
          const issuer = new TokenIssuer(secret, 60);
          const { token: expired } = await issuer.sign(
            { userId: user.userId, teamId: user.teamId },
            new Date(Date.now() - 3600_000),
          );
          await expectError(
            await server.call("GET", "/v1/api-keys", {
              headers: { authorization: `Bearer ${expired}` },
            }),
            401,
            "unauthenticated",
            "expired",
          );
          const valid = await issuer.sign({ userId: user.userId, teamId: user.teamId });
          const ok = await server.call("GET", "/v1/api-keys", {
            headers: { authorization: `bearer ${valid.token}` },
          });
          expect(ok.status).toBe(200);
        });

        it("keep the generated JWT secret in the data dir, readable by the owner only", async () => {
          const file = join(server.config.dataDir, "jwt-secret");
          expect(statSync(file).mode & 0o777).toBe(0o600);
          expect(await loadJwtSecret(undefined, server.config.dataDir)).toBe(
            await loadJwtSecret(undefined, server.config.dataDir),
          );
        });
      });

      describe("API keys", () => {
        it("create (shown once), list, authenticate, delete; team-scoped", async () => {
          const alice = await server.newUser();
          const bob = await server.newUser();
          const created = await server.call("POST", "/v1/api-keys", {
            json: { name: " ci " },
            headers: alice.auth,
          });
          expect(created.status).toBe(201);
          const key = (await created.json()) as Record<string, string>;
          expect(key).toMatchObject({ name: "ci", last_used_at: null });
          expect(key.key).toMatch(/^wrn_[\w-]{43}$/);
          expect(key.key?.startsWith(key.prefix as string)).toBe(true);

          const listed = await server.call("GET", "/v1/api-keys", { headers: alice.auth });
          const list = (await listed.json()) as { api_keys: Record<string, unknown>[] };
          expect(list.api_keys).toEqual([
            {
              id: key.id,
              name: "ci",
              prefix: key.prefix,
              created_at: key.created_at,
              last_used_at: null,
            },
          ]);
          expect(JSON.stringify(list)).not.toContain(key.key);
          const bobList = (await (
            await server.call("GET", "/v1/api-keys", { headers: bob.auth })
          ).json()) as {
            api_keys: unknown[];
          };
          expect(bobList.api_keys).toEqual([]);

          const principal = await server.services.apiKeys.authenticate(key.key as string);
          expect(principal).toEqual({ kind: "api_key", teamId: alice.teamId, apiKeyId: key.id });
          await expect(server.services.apiKeys.authenticate(`${key.key}x`)).rejects.toMatchObject({
            code: "unauthenticated",
          });

          await expectError(
            await server.call("DELETE", `/v1/api-keys/${key.id}`, { headers: bob.auth }),
            404,
            "not_found",
          );
          const deleted = await server.call("DELETE", `/v1/api-keys/${key.id}`, {
            headers: alice.auth,
          });
          expect(deleted.status).toBe(204);
          expect(await deleted.text()).toBe("");
          await expect(
            server.services.apiKeys.authenticate(key.key as string),
          ).rejects.toMatchObject({
            code: "unauthenticated",
          });
          await expectError(
            await server.call("DELETE", `/v1/api-keys/${key.id}`, { headers: alice.auth }),
            404,
            "not_found",
          );
        });
      });

      describe("HTTP edges", () => {
        it("unknown route → 404, wrong method → 405 with Allow", async () => {
          await expectError(await server.call("GET", "/v1/nothing"), 404, "not_found");
          const res = await server.call("PUT", "/v1/auth/login", { json: {} });
          expect(res.headers.get("allow")).toContain("POST");
          await expectError(res, 405, "method_not_allowed");
        });

        it("malformed JSON → 400, wrong content type → 415, too large → 413", async () => {
          const malformed = await server.app.request("/v1/auth/signup", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: '{"email": ',
          });
          await expectError(malformed, 400, "invalid_argument", "JSON");
          const text = await server.app.request("/v1/auth/signup", {
            method: "POST",
            headers: { "content-type": "text/plain" },
            body: '{"email":"a@b.co","password":"longenough"}',
          });
          await expectError(text, 415, "unsupported_media_type");
          const big = await server.call("POST", "/v1/auth/signup", {
            json: { email: "a@b.co", password: "x".repeat(8000) },
          });
          await expectError(big, 413, "payload_too_large");
        });

        it("carries a request id on every answer", async () => {
          const res = await server.call("GET", "/v1/nothing");
          expect(res.headers.get("x-request-id")).toBeTruthy();
        });
      });

      describe("documentation", () => {
        it("serves OpenAPI 3.1 as JSON and YAML from the same schemas, and Swagger UI", async () => {
          const json = (await (await server.call("GET", "/openapi.json")).json()) as {
            openapi: string;
            paths: Record<string, Record<string, unknown>>;
            components: {
              schemas: Record<string, unknown>;
              securitySchemes: Record<string, unknown>;
            };
          };
          expect(json.openapi).toBe("3.1.0");
          expect(Object.keys(json.paths)).toEqual(
            expect.arrayContaining([
              "/health",
              "/v1/auth/signup",
              "/v1/auth/login",
              "/v1/api-keys",
              "/v1/api-keys/{id}",
            ]),
          );
          expect(json.paths["/v1/api-keys/{id}"]).toHaveProperty("delete");
          expect(json.components.schemas).toHaveProperty("Error");
          expect(json.components.securitySchemes).toHaveProperty("apiKeyAuth");
          const yamlRes = await server.call("GET", "/openapi.yaml");
          expect(yamlRes.headers.get("content-type")).toMatch(/yaml/);
          expect(parse(await yamlRes.text())).toEqual(json);
          const docs = await server.call("GET", "/docs");
          expect(docs.status).toBe(200);
          expect(await docs.text()).toContain("/openapi.json");
        });

        it("reports health", async () => {
          const res = await server.call("GET", "/health");
          expect(res.status).toBe(200);
          expect(await res.json()).toEqual({ status: "ok" });
        });
      });
    },
  );
}
