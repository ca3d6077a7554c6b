import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keepHostFirewallState } from "@wrenn/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wrenn } from "./helpers/cli.js";

// `wrenn host …` argument handling and output against a FAKE hosts API (a loopback server that
// answers the /v1/hosts routes as the contract says; the real server is driven by the server's
// fleet integration test), and `wrenn agent start` refusing a bad join. Needs root for the agent.

interface Seen {
  method: string;
  url: string;
  body: unknown;
}

const host = {
  id: "h-1",
  state: "ready",
  shared: false,
  team_id: "team-1",
  address: "http://10.0.0.5:5007",
  hostname: "box-1",
  version: "0.0.0",
  runtimes: ["namespace"],
  default_runtime: "namespace",
  capacity: { vcpus: 4, memory_mb: 8192, disk_mb: 100_000 },
  usage: { sandboxes: 2, vcpus: 2, memory_mb: 1024 },
  created_at: "2026-01-01T00:00:00.000Z",
  last_seen_at: new Date().toISOString(),
};

/** A FAKE of the server's /v1/hosts routes (and a register that refuses every token). */
function fakeHostsApi() {
  const seen: Seen[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    seen.push({
      method: req.method ?? "",
      url: req.url ?? "",
      body: text ? JSON.parse(text) : undefined,
    });
    const send = (status: number, body?: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    const route = `${req.method} ${req.url}`;
    if (req.headers["x-api-key"] !== "test-key" && !req.url?.startsWith("/v1/hosts/register"))
      return send(401, { code: "unauthenticated", message: "bad key" });
    if (route === "POST /v1/hosts/tokens") {
      const body = JSON.parse(text || "{}");
      return send(201, {
        token: "tok-123",
        expires_at: "2026-12-04T05:00:00.000Z",
        shared: body.shared === true,
      });
    }
    if (route === "GET /v1/hosts") return send(200, { hosts: [host] });
    if (route === "GET /v1/hosts/h-1") return send(200, host);
    if (route === "POST /v1/hosts/h-1/drain") return send(200, { ...host, state: "draining" });
    if (route === "DELETE /v1/hosts/h-1")
      return send(409, {
        code: "conflict",
        message: "host h-1 still has sandboxes",
        sandboxes: ["sb-a", "sb-b"],
      });
    if (route === "DELETE /v1/hosts/h-1?force=true") return send(204);
    if (route === "POST /v1/hosts/register")
      return send(401, { code: "unauthenticated", message: "unknown registration token" });
    return send(404, { code: "not_found", message: `host not found: ${req.url}` });
  });
  return { server, seen };
}

describe("wrenn host against a FAKE hosts API", { timeout: 60_000 }, () => {
  const { server, seen } = fakeHostsApi();
  let env: NodeJS.ProcessEnv;
  let apiUrl: string;
  let work: string;
  let restoreHost: () => Promise<void> = async () => {};
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}, cwd?: string) =>
    wrenn(args, { env: { ...env, ...extra }, ...(cwd && { cwd }) });

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    work = await mkdtemp(join(tmpdir(), "wrenn-cli-host-"));
    const { CI: _ci, GITHUB_ACTIONS: _gh, ...rest } = process.env;
    env = {
      ...rest,
      WRENN_API_URL: apiUrl,
      WRENN_API_KEY: "test-key",
      WRENN_CONFIG_DIR: work,
      HOME: work,
    };
    restoreHost = await keepHostFirewallState();
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(work, { recursive: true, force: true });
    await restoreHost();
  });

  it("host add prints the token, its expiry and the exact join command", async () => {
    const res = await run(["host", "add", "--ttl", "600"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain("tok-123");
    expect(res.stdout).toContain("2026-12-04T05:00:00.000Z");
    expect(res.stdout).toContain(
      `wrenn agent start --server-url ${apiUrl} --registration-token tok-123 --advertise-url http://<this-host>:5007`,
    );
    expect(seen.at(-1)).toMatchObject({ url: "/v1/hosts/tokens", body: { ttl_sec: 600 } });
    const shared = await run(["host", "add", "--shared", "--json"]);
    expect(JSON.parse(shared.stdout)).toMatchObject({ token: "tok-123", shared: true });
    expect(seen.at(-1)).toMatchObject({ body: { shared: true } });
    const bad = await run(["host", "add", "--ttl", "0"]);
    expect(bad.code).toBe(2);
  });

  it("host list, info and drain", async () => {
    const list = await run(["host", "list"]);
    expect(list.code).toBe(0);
    const [header, row] = list.stdout.trim().split("\n");
    expect(header).toMatch(/^ID\s+STATE\s+HOSTNAME\s+SCOPE\s+SANDBOXES/);
    expect(row).toMatch(/^h-1\s+ready\s+box-1\s+team\s+2\s+2\/4\s+1024\/8192 MiB/);
    expect(JSON.parse((await run(["host", "list", "--json"])).stdout)).toEqual([host]);
    const info = await run(["host", "info", "h-1"]);
    expect(info.stdout).toMatch(/Address:\s+http:\/\/10\.0\.0\.5:5007/);
    expect(info.stdout).toMatch(/Capacity:\s+4 vCPUs, 8192 MiB memory/);
    const missing = await run(["host", "info", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("wrenn host list");
    const drain = await run(["host", "drain", "h-1"]);
    expect(drain.stdout).toContain("Host h-1 is draining");
  });

  it("host rm names the sandboxes in the way; --force removes", async () => {
    const busy = await run(["host", "rm", "h-1"]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain("Host h-1 still has 2 sandbox(es): sb-a, sb-b.");
    expect(busy.stderr).toContain("wrenn host rm h-1 --force");
    const forced = await run(["host", "rm", "h-1", "--force"]);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain("Removed host h-1");
    expect(seen.at(-1)).toMatchObject({ method: "DELETE", url: "/v1/hosts/h-1?force=true" });
  });

  it("agent start refuses a bad join with one line and a non-zero exit", async () => {
    const agentEnv = {
      WRENN_AGENT_DIR: join(work, "agent"),
      WRENN_SANDBOX_CIDR: `10.231.${200 + Math.floor(Math.random() * 50)}.0/24`,
      WRENN_WARM_POOL: "0",
      WRENN_LOG_LEVEL: "silent",
    };
    const args = ["agent", "start", "--port", "0", "--host", "127.0.0.1"];
    const rejected = await run(
      [...args, "--server-url", apiUrl, "--registration-token", "bogus"],
      agentEnv,
    );
    expect(rejected.code).toBe(1);
    expect(rejected.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(/^Error: Registration token rejected by .* `wrenn host add`/),
    ]);

    // From .env in the working directory; a public plain-http URL is refused before any call.
    await writeFile(join(work, ".env"), "WRENN_SERVER_URL=http://8.8.8.8:3000\n");
    const fromDotEnv = await run([...args, "--registration-token", "x"], agentEnv, work);
    expect(fromDotEnv.code).toBe(1);
    expect(fromDotEnv.stderr).toMatch(/plain http is refused for a public address/);
    // A real environment variable wins over the file.
    const envWins = await run(
      [...args, "--registration-token", "bogus"],
      { ...agentEnv, WRENN_SERVER_URL: apiUrl },
      work,
    );
    expect(envWins.stderr).toMatch(/Registration token rejected/);

    const noFile = await run(args, { ...agentEnv, WRENN_ENV_FILE: join(work, "missing.env") });
    expect(noFile.code).toBe(1);
    expect(noFile.stderr).toMatch(/WRENN_ENV_FILE: cannot read .*missing\.env/);
  });
});
