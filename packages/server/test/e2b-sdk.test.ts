import { setTimeout as sleep } from "node:timers/promises";
import { CommandExitError, FilesystemEventType, Sandbox } from "e2b";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  E2B_TEST_DOMAIN as DOMAIN,
  type E2bServer,
  getByName,
  startE2bServer,
  E2B_TEST_TEMPLATE as TEMPLATE,
} from "./helpers/e2b-server.js";

// E2B's own SDK (the `e2b` package from npm, unchanged) against a real single-host Wrenn server:
// configured by E2B_API_URL, E2B_SANDBOX_URL, E2B_DOMAIN and E2B_API_KEY only. Real sandboxes
// (namespace runtime, `test-minimal`), so it needs root like the other single-host suites.

const skipReason = process.getuid?.() !== 0 ? "needs root (real sandboxes)" : undefined;

/** The sandbox's E2B access token (the SDK keeps it protected; it sends it as X-Access-Token). */
const tokenOf = (sbx: Sandbox) => (sbx as unknown as { envdAccessToken: string }).envdAccessToken;

describe.skipIf(skipReason)(
  `E2B's SDK against Wrenn${skipReason ? ` (skipped: ${skipReason})` : ""}`,
  { timeout: 60_000 },
  () => {
    let server: E2bServer;
    let serverUrl: string;
    let serverPort: number;
    const sandboxes: Sandbox[] = [];

    beforeAll(async () => {
      // This suite's own sandbox range (see the brief: 10.243.0.0/16 .. 10.246.0.0/16).
      server = await startE2bServer("10.243");
      serverUrl = server.url;
      serverPort = server.port;
      expect(server.key).toMatch(/^e2b_[0-9a-f]+$/);
    });

    afterAll(async () => {
      await server?.close();
    });

    const create = async (opts: Parameters<typeof Sandbox.create>[1] = {}) => {
      const sbx = await Sandbox.create(TEMPLATE, opts);
      sandboxes.push(sbx);
      return sbx;
    };

    it("creates a sandbox and runs commands: foreground, streamed, failing, with env vars", async () => {
      const sbx = await create({ envs: { GREETING: "hello" }, metadata: { suite: "e2b" } });
      expect(sbx.sandboxId).toMatch(/^[a-z][a-z0-9]{19}$/);
      expect(sbx.sandboxDomain).toBe(DOMAIN);

      const result = await sbx.commands.run('echo "$GREETING from $(whoami)"');
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe("hello from user\n");

      const chunks: string[] = [];
      await sbx.commands.run("for i in 1 2 3; do echo line$i; sleep 0.2; done; echo oops >&2", {
        onStdout: (data) => {
          chunks.push(data);
        },
      });
      expect(chunks.join("")).toBe("line1\nline2\nline3\n");
      expect(chunks.length).toBeGreaterThanOrEqual(2);

      const failed = await sbx.commands.run("exit 3").catch((err: unknown) => err);
      expect(failed).toBeInstanceOf(CommandExitError);
      expect((failed as CommandExitError).exitCode).toBe(3);
    });

    it("runs a background command, reconnects to it, and feeds it stdin", async () => {
      const sbx = await create();
      const bg = await sbx.commands.run("sleep 0.5; echo done", { background: true });
      const again = await sbx.commands.connect(bg.pid);
      const finished = await again.wait();
      expect(finished.stdout).toBe("done\n");

      const cat = await sbx.commands.run("cat", { background: true, stdin: true });
      await sbx.commands.sendStdin(cat.pid, "piped through stdin\n");
      await sbx.commands.closeStdin(cat.pid);
      const out = await cat.wait();
      expect(out.stdout).toBe("piped through stdin\n");
    });

    it("writes, reads, lists and watches files", async () => {
      const sbx = await create();
      await sbx.files.makeDir("/home/user/watched");
      const events: string[] = [];
      const watch = await sbx.files.watchDir("/home/user/watched", (e) => {
        if (e.type === FilesystemEventType.CREATE) events.push(e.name);
      });
      await sbx.files.write("/home/user/watched/a.txt", "alpha");
      await sbx.files.write("/home/user/notes.txt", "x".repeat(100_000));
      expect(await sbx.files.read("/home/user/watched/a.txt")).toBe("alpha");
      expect((await sbx.files.read("/home/user/notes.txt")).length).toBe(100_000);
      const listed = await sbx.files.list("/home/user/watched");
      expect(listed.map((e) => e.name)).toEqual(["a.txt"]);
      for (let i = 0; i < 50 && !events.includes("a.txt"); i++) await sleep(100);
      await watch.stop();
      expect(events).toContain("a.txt");
      // As E2B's envd (os.RemoveAll): removing what is not there succeeds; what is there goes.
      await sbx.files.remove("/home/user/notes.txt");
      await sbx.files.remove("/home/user/notes.txt");
      await sbx.files.remove("/home/user/no/such/dir");
      expect(await sbx.files.exists("/home/user/notes.txt")).toBe(false);
      await expect(sbx.files.remove("/etc/passwd")).rejects.toThrow(/may not/);
    });

    it("watches uploads as E2B reports them: the file's own name, created then written", async () => {
      const sbx = await create();
      await sbx.files.makeDir("/home/user/up");
      const events: string[] = [];
      const watch = await sbx.files.watchDir("/home/user/up", (e) => {
        events.push(`${e.type} ${e.name}`);
      });
      const settled = async (last: string) => {
        for (let i = 0; i < 50 && events.at(-1) !== last; i++) await sleep(100);
      };
      // E2B's docs example: a write shows up as WRITE of that name, never as an upload's temp file.
      await sbx.files.write("/home/user/up/my-file", "hello");
      await settled("write my-file");
      expect(events).toEqual(["create my-file", "write my-file"]);
      events.length = 0;
      await sbx.files.write([
        { path: "/home/user/up/my-file", data: "again" },
        { path: "/home/user/up/other", data: "x" },
      ]);
      await settled("write other");
      await watch.stop();
      expect(events).toEqual(["write my-file", "create other", "write other"]);
    });

    it("gets a refused upload's error, and the calls after it are answered", async () => {
      const sbx = await create();
      await sbx.commands.run("touch /home/user/plain");
      const body = new Uint8Array(8 * 2 ** 20).fill(1);
      for (let round = 0; round < 3; round++) {
        // envd refuses it before reading the body (a path under a file) and answers at once; the
        // SDK's fetch then reuses the connection that carried the body for a later call.
        await expect(sbx.files.write("/home/user/plain/x.bin", body.buffer)).rejects.toThrow(
          /not a directory/,
        );
        expect((await sbx.commands.run("echo next")).stdout).toBe("next\n");
        await sbx.files.write("/home/user/ok.txt", `round ${round}`);
        expect(await sbx.files.read("/home/user/ok.txt")).toBe(`round ${round}`);
      }
    });

    it("runs a pty", async () => {
      const sbx = await create();
      let output = "";
      const pty = await sbx.pty.create({
        cols: 80,
        rows: 24,
        onData: (data) => {
          output += new TextDecoder().decode(data);
        },
      });
      await sbx.pty.sendInput(pty.pid, new TextEncoder().encode("echo pty-$((6*7))\nexit\n"));
      await pty.wait().catch(() => {});
      expect(output).toContain("pty-42");
    });

    it("reads info, lists with pagination and metadata filters, sets the timeout", async () => {
      const tag = `t${Date.now()}`;
      const a = await create({ metadata: { tag, n: "1" }, timeoutMs: 120_000 });
      const b = await create({ metadata: { tag, n: "2", "odd key": "c&d=e%" } });
      const info = await a.getInfo();
      expect(info.sandboxId).toBe(a.sandboxId);
      expect(info.templateId).toBe(TEMPLATE);
      expect(info.state).toBe("running");
      expect(info.metadata).toEqual({ tag, n: "1" });
      expect(info.endAt.getTime()).toBeGreaterThan(info.startedAt.getTime());

      const paginator = Sandbox.list({ query: { metadata: { tag } }, limit: 1 });
      const first = await paginator.nextItems();
      expect(first).toHaveLength(1);
      expect(paginator.hasNext).toBe(true);
      const second = await paginator.nextItems();
      expect(second).toHaveLength(1);
      expect(paginator.hasNext).toBe(false);
      expect([first[0]?.sandboxId, second[0]?.sandboxId].sort()).toEqual(
        [a.sandboxId, b.sandboxId].sort(),
      );
      const only = await Sandbox.list({ query: { metadata: { tag, n: "2" } } }).nextItems();
      expect(only.map((s) => s.sandboxId)).toEqual([b.sandboxId]);
      // E2B's SDK encodes the filter twice; keys and values with &, = and % survive.
      const odd = await Sandbox.list({ query: { metadata: { "odd key": "c&d=e%" } } }).nextItems();
      expect(odd.map((s) => s.sandboxId)).toEqual([b.sandboxId]);

      await a.setTimeout(600_000);
      const after = await a.getInfo();
      expect(after.endAt.getTime() - Date.now()).toBeGreaterThan(500_000);
    });

    it("pauses, refuses a second pause, and resumes on connect with the files kept", async () => {
      const sbx = await create();
      await sbx.files.write("/home/user/kept.txt", "still here");
      expect(await Sandbox.pause(sbx.sandboxId)).toBe(true);
      expect(await Sandbox.pause(sbx.sandboxId)).toBe(false);
      expect((await Sandbox.getInfo(sbx.sandboxId)).state).toBe("paused");
      // No samples while paused (E2B answers its history, [] when it has none), not an error.
      expect(await Sandbox.getMetrics(sbx.sandboxId)).toEqual([]);
      const resumed = await Sandbox.connect(sbx.sandboxId);
      expect((await Sandbox.getInfo(sbx.sandboxId)).state).toBe("running");
      const [sample] = await resumed.getMetrics();
      expect(sample?.memTotal).toBeGreaterThan(0);
      expect(await resumed.files.read("/home/user/kept.txt")).toBe("still here");
      expect((await resumed.commands.run("echo back")).stdout).toBe("back\n");
    });

    it("reaches a server started inside the sandbox: by header and by host name", async () => {
      const sbx = await create();
      await sbx.commands.run(
        `node -e "require('http').createServer((q,s)=>s.end('hello '+q.method+' '+q.url+' '+(q.headers.authorization||''))).listen(8000)"`,
        { background: true },
      );
      const hostName = sbx.getHost(8000);
      expect(hostName).toBe(`8000-${sbx.sandboxId}.${DOMAIN}`);
      let byName = { status: 0, body: "" };
      for (let i = 0; i < 50; i++) {
        byName = await getByName(hostName, serverPort, "/x?y=1", { authorization: "Bearer mine" });
        if (byName.status === 200) break;
        await sleep(100);
      }
      expect(byName).toEqual({ status: 200, body: "hello GET /x?y=1 Bearer mine" });

      // Wrenn's own API says the same (what `sandbox.getHost` and `wrenn sandbox url` read),
      // and takes the e2b_ key like any other.
      const published = await fetch(`${serverUrl}/v1/sandboxes/${sbx.sandboxId}/ports/8000`, {
        headers: { "x-api-key": process.env.E2B_API_KEY ?? "" },
      });
      expect(await published.json()).toEqual({
        port: 8000,
        host: hostName,
        url: `http://${hostName}:${serverPort}`,
        // Public traffic (the default): no token needed.
        traffic_access_token: null,
      });

      const byHeader = await fetch(`${serverUrl}/p`, {
        method: "POST",
        headers: { "e2b-sandbox-id": sbx.sandboxId, "e2b-sandbox-port": "8000" },
        body: "ignored",
      });
      expect(byHeader.status).toBe(200);
      expect(await byHeader.text()).toBe("hello POST /p ");

      // A port nothing listens on, and a sandbox that does not exist: 502, as E2B's proxy says.
      // The answer says why without the sandbox's address on the host's network.
      const closed = await getByName(`8001-${sbx.sandboxId}.${DOMAIN}`, serverPort, "/");
      expect(closed.status).toBe(502);
      expect(JSON.parse(closed.body).message).toBe(
        `port 8001 of sandbox ${sbx.sandboxId}: nothing listens on it (connection refused)`,
      );
      expect((await getByName(`8000-${"a".repeat(20)}.${DOMAIN}`, serverPort, "/")).status).toBe(
        502,
      );
    });

    it("routes envd by host name only with the sandbox's access token", async () => {
      const sbx = await create();
      const sleeper = await sbx.commands.run("sleep 30", { background: true });
      const envdHost = `49983-${sbx.sandboxId}.${DOMAIN}`;
      const rpc = {
        "content-type": "application/json",
        "connect-protocol-version": "1",
      };
      const denied = await getByName(
        envdHost,
        serverPort,
        "/process.Process/List",
        rpc,
        "POST",
        "{}",
      );
      expect(denied.status).toBe(401);
      expect(JSON.parse(denied.body).code).toBe(401);
      const other = await create();
      const wrong = await getByName(
        envdHost,
        serverPort,
        "/process.Process/List",
        // Another sandbox's token opens only that sandbox.
        { ...rpc, "x-access-token": tokenOf(other) },
        "POST",
        "{}",
      );
      expect(wrong.status).toBe(401);
      const allowed = await getByName(
        envdHost,
        serverPort,
        "/process.Process/List",
        { ...rpc, "x-access-token": tokenOf(sbx) },
        "POST",
        "{}",
      );
      expect(allowed.status).toBe(200);
      const { processes } = JSON.parse(allowed.body) as { processes: { pid: number }[] };
      expect(processes.map((p) => p.pid)).toContain(sleeper.pid);

      // A signed download URL (what sbx.downloadUrl makes) opens that one file without the token.
      await sbx.files.write("/home/user/shared.txt", "signed bytes");
      const signed = new URL(await sbx.downloadUrl("/home/user/shared.txt"));
      const download = await getByName(envdHost, serverPort, `/files${signed.search}`);
      expect(download).toEqual({ status: 200, body: "signed bytes" });
      const forged = new URL(signed);
      forged.searchParams.set("path", "/home/user/.profile");
      expect((await getByName(envdHost, serverPort, `/files${forged.search}`)).status).toBe(401);
      const expired = new URL(
        await sbx.downloadUrl("/home/user/shared.txt", { useSignatureExpiration: -10 }),
      );
      expect((await getByName(envdHost, serverPort, `/files${expired.search}`)).status).toBe(401);
    });

    it("answers E2B's error shapes and kills", async () => {
      const sbx = await create();
      const res = await fetch(`${serverUrl}/sandboxes/${"b".repeat(20)}`, {
        headers: { "x-api-key": process.env.E2B_API_KEY ?? "" },
      });
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ code: 404 });
      const unauth = await fetch(`${serverUrl}/v2/sandboxes`, {
        headers: { "x-api-key": "e2b_00" },
      });
      expect(unauth.status).toBe(401);
      expect(await unauth.json()).toMatchObject({ code: 401 });
      const refused = await fetch(`${serverUrl}/v2/sandboxes`, {
        method: "POST",
        headers: { "x-api-key": process.env.E2B_API_KEY ?? "", "content-type": "application/json" },
        body: JSON.stringify({ templateID: TEMPLATE, network: { allowOut: ["not a name!"] } }),
      });
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ code: 400 });
      // Options Wrenn cannot honour yet are refused, never silently dropped.
      for (const body of [
        { iam: { tokens: { gh: { audience: "x", tokenType: "jwt" } } } },
        { network: { maskRequestHost: "example.com" } },
        { autoPause: true, autoPauseMemory: false },
      ]) {
        const res = await fetch(`${serverUrl}/v2/sandboxes`, {
          method: "POST",
          headers: {
            "x-api-key": process.env.E2B_API_KEY ?? "",
            "content-type": "application/json",
          },
          body: JSON.stringify({ templateID: TEMPLATE, ...body }),
        });
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(((await res.json()) as { message: string }).message).toMatch(
          /not supported by this Wrenn server yet/,
        );
      }

      expect(await sbx.kill()).toBe(true);
      expect(await Sandbox.kill(sbx.sandboxId)).toBe(false);
      expect(await sbx.isRunning()).toBe(false);
    });
  },
);
