import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId, Store } from "../src/db/index.js";
import { startTestServer, type TestServer } from "./helpers/app.js";
import { testEngines } from "./helpers/databases.js";

// Pending team invitations: listed to the team without their tokens, revoked by an owner; another
// team's invitation is as missing as none (tenants are hostile).

interface Pending {
  id: string;
  created_at: string;
  expires_at: string;
  created_by: string | null;
}

for (const engine of testEngines()) {
  describe.skipIf(engine.skipReason)(
    `team invitations on ${engine.name}${engine.skipReason ? ` (skipped: ${engine.skipReason})` : ""}`,
    () => {
      let server: TestServer;

      beforeAll(async () => {
        server = await startTestServer(engine);
      });
      afterAll(async () => {
        await server?.cleanup();
      });

      const invite = async (auth: Record<string, string>) => {
        const res = await server.call("POST", "/v1/teams/invites", { headers: auth });
        expect(res.status).toBe(201);
        return (await res.json()) as { id: string; token: string; expires_at: string };
      };
      const pending = async (auth: Record<string, string>) => {
        const res = await server.call("GET", "/v1/teams/invites", { headers: auth });
        expect(res.status).toBe(200);
        return ((await res.json()) as { invites: Pending[] }).invites;
      };
      const revoke = (id: string, auth: Record<string, string>) =>
        server.call("DELETE", `/v1/teams/invites/${id}`, { headers: auth });
      const signup = (email: string, invite: string) =>
        server.call("POST", "/v1/auth/signup", {
          json: { email, password: "correct horse battery", invite },
        });

      it("lists pending invitations oldest first, never their tokens; used and expired ones drop out", async () => {
        const owner = await server.newUser();
        const first = await invite(owner.auth);
        const second = await invite(owner.auth);
        const listed = await pending(owner.auth);
        expect(listed.map((i) => i.id)).toEqual([first.id, second.id]);
        expect(listed[0]).toEqual({
          id: first.id,
          created_at: expect.any(String),
          expires_at: first.expires_at,
          created_by: owner.userId,
        });
        expect(JSON.stringify(listed)).not.toContain(first.token);
        expect(JSON.stringify(listed)).not.toContain("token");

        // Used: gone from the list. Expired (written directly, a week is long to wait): never listed.
        expect((await signup(`joined-${Date.now()}@example.com`, first.token)).status).toBe(201);
        const store = new Store(server.database.handle.db, server.database.handle.dialect);
        const past = new Date(Date.now() - 60_000).toISOString();
        await store.invites.insert({
          id: newId(),
          teamId: owner.teamId,
          tokenHash: `expired-${newId()}`,
          createdBy: owner.userId,
          createdAt: past,
          expiresAt: past,
          usedAt: null,
        });
        expect((await pending(owner.auth)).map((i) => i.id)).toEqual([second.id]);
      });

      it("a revoked invitation no longer signs anyone up; revoking twice is 404", async () => {
        const owner = await server.newUser();
        const made = await invite(owner.auth);
        expect((await revoke(made.id, owner.auth)).status).toBe(204);
        expect(await pending(owner.auth)).toEqual([]);
        const refused = await signup(`revoked-${Date.now()}@example.com`, made.token);
        expect(refused.status).toBe(403);
        expect(await refused.json()).toMatchObject({ code: "permission_denied" });
        const again = await revoke(made.id, owner.auth);
        expect(again.status).toBe(404);
        expect(await again.json()).toMatchObject({ code: "not_found" });
      });

      it("another team's invitation is 404 like a missing one, and stays usable", async () => {
        const a = await server.newUser();
        const b = await server.newUser();
        const theirs = await invite(a.auth);
        expect(await pending(b.auth)).toEqual([]);
        const stolen = await revoke(theirs.id, b.auth);
        const missing = await revoke(newId(), b.auth);
        expect(stolen.status).toBe(404);
        expect(missing.status).toBe(404);
        const [s, m] = (await Promise.all([stolen.json(), missing.json()])) as {
          code: string;
          message: string;
        }[];
        expect(s?.code).toBe("not_found");
        expect(s?.message.replace(theirs.id, "X")).toBe(m?.message.replace(/"[a-z0-9]+"/, '"X"'));
        expect((await pending(a.auth)).map((i) => i.id)).toEqual([theirs.id]);
        const joined = await signup(`still-good-${Date.now()}@example.com`, theirs.token);
        expect(joined.status).toBe(201);
        expect(await joined.json()).toMatchObject({ team_id: a.teamId });
      });

      it("a member sees the pending invitations but cannot revoke them; an API key cannot list them", async () => {
        const owner = await server.newUser();
        const join = await invite(owner.auth);
        const open = await invite(owner.auth);
        const email = `member-${Date.now()}@example.com`;
        expect((await signup(email, join.token)).status).toBe(201);
        const login = await server.call("POST", "/v1/auth/login", {
          json: { email, password: "correct horse battery" },
        });
        const member = {
          authorization: `Bearer ${((await login.json()) as { token: string }).token}`,
        };
        expect((await pending(member)).map((i) => i.id)).toEqual([open.id]);
        const denied = await revoke(open.id, member);
        expect(denied.status).toBe(403);
        expect(await denied.json()).toMatchObject({ code: "permission_denied" });
        const key = await server.call("POST", "/v1/api-keys", {
          json: { name: "k" },
          headers: owner.auth,
        });
        const apiKey = { "x-api-key": ((await key.json()) as { key: string }).key };
        expect((await server.call("GET", "/v1/teams/invites", { headers: apiKey })).status).toBe(
          401,
        );
        expect((await pending(owner.auth)).map((i) => i.id)).toEqual([open.id]);
      });
    },
  );
}
