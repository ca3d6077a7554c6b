import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SandboxRecord, Store } from "../src/db/index.js";
import { startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";
import { sandboxRow } from "./helpers/rows.js";

// The network routes' validation, scoping and stored policy, over rows written straight into
// the database (no agent: the rules themselves are proven against real namespaces in the agent's
// egress suite). A valid change that needs the agent answers 503.

for (const engine of testEngines()) {
  describe.skipIf(engine.skipReason)(
    `egress routes on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    () => {
      let server: TestServer;
      let keyA: Record<string, string>;
      let mine: SandboxRecord;
      let theirs: SandboxRecord;
      let old: SandboxRecord;

      beforeAll(async () => {
        server = await startTestServer(engine);
        const keys = [];
        const teams = [];
        for (let i = 0; i < 2; i++) {
          const user = await server.newUser();
          const res = await server.call("POST", "/v1/api-keys", {
            json: { name: "k" },
            headers: user.auth,
          });
          keys.push({ "x-api-key": ((await res.json()) as { key: string }).key });
          teams.push(user.teamId);
        }
        keyA = keys[0]!;
        const store = new Store(server.database.handle.db, server.database.handle.dialect);
        mine = await store.sandboxes.insert(
          sandboxRow(teams[0]!, {
            network: {
              allowInternetAccess: true,
              allowOut: ["example.com"],
              denyOut: ["10.0.0.0/8"],
            },
          }),
        );
        old = await store.sandboxes.insert(sandboxRow(teams[0]!));
        theirs = await store.sandboxes.insert(sandboxRow(teams[1]!));
      });
      afterAll(async () => {
        await server?.cleanup();
      });

      it("shows the stored policy, and rows from before it as open", async () => {
        const get = async (id: string) =>
          (await (await server.call("GET", `/v1/sandboxes/${id}`, { headers: keyA })).json()) as {
            network: unknown;
          };
        expect((await get(mine.id)).network).toEqual({
          allow_internet_access: true,
          allow_out: ["example.com"],
          deny_out: ["10.0.0.0/8"],
        });
        expect((await get(old.id)).network).toEqual({
          allow_internet_access: true,
          allow_out: [],
          deny_out: [],
        });
      });

      it("refuses malformed rules and too many of them with 400 {code, message}", async () => {
        const bad: [unknown, string][] = [
          [{ allow_out: ["10.0.0.1/33"] }, "10.0.0.1/33"],
          [{ allow_out: ["10.0.0.1/8"] }, "host bits"],
          [{ deny_out: ["exa mple.com"] }, "exa mple.com"],
          [{ deny_out: ["-bad.example.com"] }, "-bad.example.com"],
          [{ allow_out: ["*.*.example.com"] }, "*.*.example.com"],
          [{ allow_out: ["2001:db8::/32"] }, "IPv6"],
          [{ allow_out: ["1.2.3"] }, "1.2.3"],
          [{ allow_out: "example.com" }, "allow_out"],
          [{ deny_out: Array.from({ length: 257 }, (_, i) => `h${i}.example.com`) }, "deny_out"],
        ];
        for (const [json, text] of bad) {
          for (const [method, path] of [
            ["POST", "/v1/sandboxes"],
            ["PUT", `/v1/sandboxes/${mine.id}/network`],
          ] as const) {
            const res = await server.call(method, path, { json, headers: keyA });
            expect(res.status, `${method} ${JSON.stringify(json).slice(0, 80)}`).toBe(400);
            const body = (await res.json()) as { code: string; message: string };
            expect(body.code).toBe("invalid_argument");
            expect(body.message).toContain(text);
          }
        }
      });

      it("answers 404 for another team's sandbox and 503 without an agent", async () => {
        const json = { allow_out: ["*.example.com", "203.0.113.0/24"], deny_out: ["1.1.1.1"] };
        const theirsRes = await server.call("PUT", `/v1/sandboxes/${theirs.id}/network`, {
          json,
          headers: keyA,
        });
        expect(theirsRes.status).toBe(404);
        const res = await server.call("PUT", `/v1/sandboxes/${mine.id}/network`, {
          json,
          headers: keyA,
        });
        expect(res.status).toBe(503);
        expect(await res.json()).toMatchObject({ code: "unavailable" });
      });

      it("takes E2B's update body on /sandboxes/{id}/network, refusing what it cannot do", async () => {
        const e2b = (json: unknown) =>
          server.call("PUT", `/sandboxes/${mine.id}/network`, { json, headers: keyA });
        const bad = await e2b({ allowOut: ["bad name!"] });
        expect(bad.status).toBe(400);
        expect(await bad.json()).toMatchObject({ code: 400 });
        const proxy = await e2b({ egressProxy: { address: "p:1" } });
        expect(proxy.status).toBe(400);
        expect(((await proxy.json()) as { message: string }).message).toContain("egressProxy");
      });
    },
  );
}
