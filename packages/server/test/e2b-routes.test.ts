import { request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { Sandbox } from "e2b";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2B_TEST_DOMAIN as DOMAIN,
  type E2bServer,
  exampleTestLookup,
  getByName,
  startE2bServer,
  E2B_TEST_TEMPLATE as TEMPLATE,
} from "./helpers/e2b-server.js";
import { FrontProxy } from "./helpers/front-proxy.js";
import { openSocket, SERVICE } from "./helpers/port-service.js";

// The sandbox routes (`<port>-<id>.example.test` and E2B's E2b-Sandbox-* headers) beyond plain
// HTTP: ports kept private with a traffic token, auto-resume of a paused sandbox on traffic,
// WebSockets both ways and unbuffered HTTP streaming, driven through E2B's own SDK (unchanged)
// and a real single-host server with real sandboxes (root needed).

const skipReason = process.getuid?.() !== 0 ? "needs root (real sandboxes)" : undefined;

describe.skipIf(skipReason)(
  `sandbox routes beyond plain HTTP${skipReason ? ` (skipped: ${skipReason})` : ""}`,
  { timeout: 90_000 },
  () => {
    let server: E2bServer;

    beforeAll(async () => {
      // This suite's own sandbox range.
      server = await startE2bServer("10.225");
    });

    afterAll(async () => {
      await server?.close();
    });

    /** A sandbox running SERVICE on port 8000, answering by host name. */
    const withService = async (opts: Parameters<typeof Sandbox.create>[1] = {}) => {
      const sbx = await Sandbox.create(TEMPLATE, opts);
      await sbx.files.write("/home/user/service.js", SERVICE);
      await sbx.commands.run("node /home/user/service.js", { background: true });
      const headers: Record<string, string> = sbx.trafficAccessToken
        ? { "e2b-traffic-access-token": sbx.trafficAccessToken }
        : {};
      for (let i = 0; i < 100; i++) {
        const res = await getByName(sbx.getHost(8000), server.port, "/", headers).catch(() => ({
          status: 0,
        }));
        if (res.status === 200) return sbx;
        await sleep(100);
      }
      throw new Error("the service in the sandbox never answered");
    };

    it("keeps ports private without public traffic: the traffic token opens them, by name and by header", async () => {
      const sbx = await withService({ network: { allowPublicTraffic: false } });
      const other = await withService();
      expect(sbx.trafficAccessToken).toMatch(/^[0-9a-f]{64}$/);
      expect(other.trafficAccessToken).toBeUndefined();
      const host = sbx.getHost(8000);
      const token = sbx.trafficAccessToken as string;

      const denied = await getByName(host, server.port, "/x");
      expect(denied.status).toBe(403);
      expect(JSON.parse(denied.body)).toMatchObject({ code: 403 });
      expect(
        (await getByName(host, server.port, "/x", { "e2b-traffic-access-token": "0".repeat(64) }))
          .status,
      ).toBe(403);
      expect(
        await getByName(host, server.port, "/x", { "e2b-traffic-access-token": token }),
      ).toEqual({ status: 200, body: "hello /x" });

      const byHeader = (extra: Record<string, string>) =>
        fetch(`${server.url}/y`, {
          headers: { "e2b-sandbox-id": sbx.sandboxId, "e2b-sandbox-port": "8000", ...extra },
        });
      expect((await byHeader({})).status).toBe(403);
      const allowed = await byHeader({ "e2b-traffic-access-token": token });
      expect(allowed.status).toBe(200);
      expect(await allowed.text()).toBe("hello /y");

      // A public sandbox needs nothing; envd of the private one still works with its own token.
      expect((await getByName(other.getHost(8000), server.port, "/z")).status).toBe(200);
      expect((await sbx.commands.run("echo still")).stdout).toBe("still\n");

      // Wrenn's own API tells the token to the team, and records the choice.
      const port = await fetch(`${server.url}/v1/sandboxes/${sbx.sandboxId}/ports/8000`, {
        headers: { "x-api-key": server.key },
      });
      expect(await port.json()).toMatchObject({ host, traffic_access_token: token });
      const info = await fetch(`${server.url}/v1/sandboxes/${sbx.sandboxId}`, {
        headers: { "x-api-key": server.key },
      });
      expect(await info.json()).toMatchObject({ allow_public_traffic: false, auto_resume: false });
      await Promise.all([sbx.kill(), other.kill()]);
    });

    it("resumes a paused sandbox on traffic when it asked for that, else answers 409", async () => {
      const auto = await withService({ lifecycle: { onTimeout: "pause", autoResume: true } });
      const manual = await withService();
      expect((await auto.getInfo()).lifecycle).toMatchObject({ autoResume: true });
      await Promise.all([Sandbox.pause(auto.sandboxId), Sandbox.pause(manual.sandboxId)]);
      expect((await Sandbox.getInfo(auto.sandboxId)).state).toBe("paused");

      // Two requests at once share one resume; the process inside kept running through it.
      const [first, second] = await Promise.all([
        getByName(auto.getHost(8000), server.port, "/a"),
        fetch(`${server.url}/b`, {
          headers: { "e2b-sandbox-id": auto.sandboxId, "e2b-sandbox-port": "8000" },
        }).then(async (r) => ({ status: r.status, body: await r.text() })),
      ]);
      expect(first).toEqual({ status: 200, body: "hello /a" });
      expect(second).toEqual({ status: 200, body: "hello /b" });
      expect((await Sandbox.getInfo(auto.sandboxId)).state).toBe("running");

      const refused = await getByName(manual.getHost(8000), server.port, "/c");
      expect(refused.status).toBe(409);
      expect(JSON.parse(refused.body)).toMatchObject({
        code: 409,
        sandboxId: manual.sandboxId,
        canAutoResume: false,
      });
      expect((await Sandbox.getInfo(manual.sandboxId)).state).toBe("paused");
      await Promise.all([auto.kill(), Sandbox.kill(manual.sandboxId)]);
    });

    it("passes WebSockets both ways and HTTP streams unbuffered, by host name and by header", async () => {
      const sbx = await withService({ network: { allowPublicTraffic: false } });
      const token = sbx.trafficAccessToken as string;
      const byName = `ws://${sbx.getHost(8000)}:${server.port}/chat`;
      await expect(openSocket(byName)).rejects.toThrow("handshake refused: 403");

      const routes: [string, string, Record<string, string>][] = [
        ["host name", byName, { "e2b-traffic-access-token": token }],
        [
          "header",
          `ws://127.0.0.1:${server.port}/chat`,
          {
            "e2b-sandbox-id": sbx.sandboxId,
            "e2b-sandbox-port": "8000",
            "e2b-traffic-access-token": token,
          },
        ],
      ];
      for (const [name, url, headers] of routes) {
        const { ws, next } = await openSocket(url, headers);
        expect(await next(), name).toBe("hello /chat");
        for (const text of ["one", "two", "x".repeat(100)]) {
          ws.send(text);
          expect(await next(), name).toBe(`echo ${text}`);
        }
        const closed = new Promise((resolve) => ws.once("close", resolve));
        ws.close();
        await closed;
      }

      // The first line arrives while the sandbox still holds the response open: nothing on the
      // way buffers it (were it held back, `first` would never come and the test would time out).
      const chunks: string[] = [];
      const done = new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: sbx.getHost(8000),
            port: server.port,
            path: "/stream",
            headers: { "e2b-traffic-access-token": token },
            lookup: exampleTestLookup as never,
          },
          (res) => {
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => {
              chunks.push(chunk);
              if (chunk.includes("first")) {
                getByName(sbx.getHost(8000), server.port, "/release", {
                  "e2b-traffic-access-token": token,
                }).catch(reject);
              }
            });
            res.on("end", () => resolve(res.statusCode ?? 0));
          },
        );
        req.on("error", reject);
        req.end();
      });
      expect(await done).toBe(200);
      expect(chunks.join("")).toBe("first\nsecond\n");
      await sbx.kill();
    });

    it("drives envd by host name alone, without E2B_SANDBOX_URL (a TLS front for *.example.test)", async () => {
      const front = await FrontProxy.start(DOMAIN, server.port);
      const saved = {
        E2B_SANDBOX_URL: process.env.E2B_SANDBOX_URL,
        NODE_TLS_REJECT_UNAUTHORIZED: process.env.NODE_TLS_REJECT_UNAUTHORIZED,
      };
      // The SDK now aims at https://49983-<id>.example.test, which only the front reaches; its
      // certificate is self-signed.
      delete process.env.E2B_SANDBOX_URL;
      process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
      try {
        const sbx = await Sandbox.create(TEMPLATE, { proxy: front.url });
        expect(sbx.sandboxDomain).toBe(DOMAIN);
        const out = await sbx.commands.run("echo by-name");
        expect(out.stdout).toBe("by-name\n");
        await sbx.files.write("/home/user/named.txt", "named");
        expect(await sbx.files.read("/home/user/named.txt")).toBe("named");
        const bg = await sbx.commands.run("sleep 0.3; echo later", { background: true });
        expect((await (await sbx.commands.connect(bg.pid)).wait()).stdout).toBe("later\n");
        expect(front.tunnels).toContain(`49983-${sbx.sandboxId}.${DOMAIN}:443`);
        await sbx.kill();
      } finally {
        for (const [name, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
        }
        await front.close();
      }
    });
  },
);
