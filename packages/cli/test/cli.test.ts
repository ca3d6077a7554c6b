import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, wrenn } from "./helpers/cli.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

// The built `wrenn` binary as a child process against `wrenn server start` (a real single-host
// server with real namespace sandboxes). Needs root, bubblewrap, iproute2, nftables, e2fsprogs.

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const ID = /^[a-z0-9]+$/;

/** sha256 of every file under `dir`, by relative path. */
async function hashTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out[relative(dir, path)] = sha256(await readFile(path));
  }
  return out;
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("wrenn CLI against a single-host server", { timeout: 120_000 }, () => {
  let server: TestServer;
  let work: string;
  let id: string;
  const run = (args: string[], input?: string | Buffer) =>
    wrenn(args, { env: server.env, ...(input === undefined ? {} : { input }) });

  beforeAll(async () => {
    server = await startTestServer();
    work = await mkdtemp(join(tmpdir(), "wrenn-cli-files-"));
  }, 180_000);

  afterAll(async () => {
    await rm(work ?? "/nonexistent", { recursive: true, force: true });
    await server?.close();
  }, 120_000);

  it("starts the server with libuv's thread pool at 16 threads", async () => {
    // The bin sets the size before Node loads any ES module (which starts the pool). A Node
    // process with the default 4 pool threads has about 11 threads in all; with 16, about 23.
    const status = await readFile(`/proc/${server.pid}/status`, "utf8");
    expect(Number(/^Threads:\s+(\d+)/m.exec(status)?.[1])).toBeGreaterThanOrEqual(20);
  });

  it("creates a sandbox and prints only its id", async () => {
    const res = await run([
      "sandbox",
      "create",
      "--memory",
      "256",
      "--disk",
      "128",
      "-m",
      "suite=cli",
    ]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    id = res.stdout.trim();
    expect(id).toMatch(ID);
  });

  it("creates with --json: everything about the sandbox", async () => {
    const res = await run([
      "sandbox",
      "create",
      "--json",
      "--memory",
      "256",
      "--disk",
      "128",
      "--timeout",
      "5m",
      "-m",
      "role=json",
    ]);
    expect(res.code, res.stderr).toBe(0);
    const info = JSON.parse(res.stdout);
    expect(info).toMatchObject({
      state: "running",
      memoryMb: 256,
      timeoutMs: 300_000,
      metadata: { role: "json" },
    });
    expect(info.sandboxId).toMatch(ID);
    const killed = await run(["sandbox", "kill", info.sandboxId]);
    expect(killed.stdout).toBe(`Killed ${info.sandboxId}\n`);
  });

  it("lists as a table and as JSON, filtered by metadata", async () => {
    const table = await run(["sandbox", "list"]);
    expect(table.code, table.stderr).toBe(0);
    const [header, ...rows] = table.stdout.trim().split("\n");
    expect(header).toMatch(/^ID\s+STATE\s+TEMPLATE/);
    expect(rows.find((r) => r.startsWith(id))).toMatch(/running\s+test-minimal/);

    const json = await run(["sandbox", "list", "--json", "--metadata", "suite=cli"]);
    const list = JSON.parse(json.stdout) as { sandboxId: string }[];
    expect(list.map((s) => s.sandboxId)).toEqual([id]);
    const none = await run(["sandbox", "list", "--json", "--metadata", "suite=other"]);
    expect(JSON.parse(none.stdout)).toEqual([]);
  });

  it("shows info as text and as JSON", async () => {
    const text = await run(["sandbox", "info", id]);
    expect(text.stdout).toMatch(new RegExp(`^ID:\\s+${id}$`, "m"));
    expect(text.stdout).toMatch(/^metadata\.suite:\s+cli$/m);
    const json = JSON.parse((await run(["sandbox", "info", id, "--json"])).stdout);
    expect(json).toMatchObject({ sandboxId: id, state: "running", template: "test-minimal" });
  });

  it("sandbox url says what the server lacks when it publishes no ports", async () => {
    // This test server has no WRENN_DOMAIN (the E2B suite covers the published case).
    const res = await run(["sandbox", "url", id, "8000"]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/WRENN_DOMAIN/);
    const bad = await run(["sandbox", "url", id, "70000"]);
    expect(bad.code).not.toBe(0);
  });

  it("exec streams stdout and stderr apart and exits with the command's code", async () => {
    const res = await run(["exec", id, "--", "echo out; echo err >&2; exit 7"]);
    expect(res.code).toBe(7);
    expect(res.stdout).toBe("out\n");
    expect(res.stderr).toBe("err\n");
    const words = await run(["exec", id, "--", "echo", "$HOME", "a b"]);
    expect(words.stdout).toBe("$HOME a b\n");
    expect((await run(["exec", id, "--", "true"])).code).toBe(0);
  });

  it("exec pipes stdin when it is not a terminal, byte for byte", async () => {
    expect((await run(["exec", id, "--", "cat"], "hi\n")).stdout).toBe("hi\n");
    const data = randomBytes(512 * 1024);
    const res = await run(["exec", id, "--", "sha256sum"], data);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.split(" ")[0]).toBe(sha256(data));
    const echoed = await run(["exec", id, "--", "cat"], data);
    expect(sha256(echoed.stdoutBytes)).toBe(sha256(data));
  });

  it("Ctrl-C on exec kills the command in the sandbox and exits 130", async () => {
    const child = spawn(process.execPath, [BIN, "exec", id, "--", "echo started; sleep 77"], {
      env: server.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => String(d).includes("started") && resolve());
        child.on("exit", () => reject(new Error("exec ended before printing")));
      });
      child.kill("SIGINT");
      const [code] = await once(child, "exit");
      expect(code).toBe(130);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    const ps = await run(["exec", id, "--", "ps"]);
    expect(ps.stdout).not.toContain("sleep 77");
  });

  it("copies a directory tree in and back out, every file intact", async () => {
    const src = join(work, "tree");
    await mkdir(join(src, "a", "b"), { recursive: true });
    await mkdir(join(src, "empty-dir"));
    await writeFile(join(src, "top.txt"), "top\n");
    await writeFile(join(src, "a", "zero"), "");
    await writeFile(join(src, "a", "b", "big.bin"), randomBytes(3 * 1024 * 1024 + 17));
    const expected = await hashTree(src);

    const up = await run(["files", "cp", src, `${id}:/tmp/up`]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toBe(""); // no progress bar without a terminal
    const remote = await run([
      "exec",
      id,
      "--",
      "cd /tmp/up && find . -type f | sort | xargs sha256sum",
    ]);
    const remoteHashes = Object.fromEntries(
      remote.stdout
        .trim()
        .split("\n")
        .map((line) => {
          const [hash, path] = line.split(/\s+/);
          return [String(path).replace(/^\.\//, ""), hash];
        }),
    );
    expect(remoteHashes).toEqual(expected);
    expect((await run(["exec", id, "--", "test -d /tmp/up/empty-dir"])).code).toBe(0);

    // Into an existing directory the tree keeps its name (cp -r).
    const back = join(work, "back");
    await mkdir(back);
    const down = await run(["files", "cp", `${id}:/tmp/up`, back]);
    expect(down.code, down.stderr).toBe(0);
    expect(await hashTree(join(back, "up"))).toEqual(expected);
    expect((await readdir(join(back, "up", "empty-dir"))).length).toBe(0);

    // One file, out to a new name.
    const one = await run(["files", "cp", `${id}:/tmp/up/a/b/big.bin`, join(work, "big.copy")]);
    expect(one.code, one.stderr).toBe(0);
    expect(sha256(await readFile(join(work, "big.copy")))).toBe(expected["a/b/big.bin"]);
  });

  it("ls, cat, mkdir, mv and rm inside the sandbox", async () => {
    expect((await run(["files", "mkdir", id, "/tmp/m/n"])).code).toBe(0);
    expect((await run(["files", "mv", id, "/tmp/m", "/tmp/m2"])).code).toBe(0);
    const ls = await run(["files", "ls", id, "/tmp/m2"]);
    expect(ls.stdout).toMatch(/\bn\/$/m);
    const json = JSON.parse((await run(["files", "ls", id, "/tmp/up", "--json"])).stdout) as {
      name: string;
    }[];
    expect(json.map((e) => e.name).sort()).toEqual(["a", "empty-dir", "top.txt"]);
    expect((await run(["files", "cat", id, "/tmp/up/top.txt"])).stdout).toBe("top\n");
    expect((await run(["files", "rm", id, "/tmp/m2"])).code).toBe(0);
    const gone = await run(["files", "ls", id, "/tmp/m2"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("wrenn files ls");
  });

  it("pauses, resumes, pings, sets the timeout and reads metrics", async () => {
    expect((await run(["sandbox", "pause", id])).stdout).toBe(`${id} paused\n`);
    // Lifecycle calls on a paused sandbox leave it paused.
    expect((await run(["sandbox", "set-timeout", id, "10m"])).stdout).toBe(
      `${id} idle timeout: 10m00s\n`,
    );
    expect(JSON.parse((await run(["sandbox", "info", id, "--json"])).stdout).state).toBe("paused");
    expect((await run(["sandbox", "resume", id])).stdout).toBe(`${id} resumed\n`);
    expect((await run(["sandbox", "ping", id])).code).toBe(0);
    expect(JSON.parse((await run(["sandbox", "info", id, "--json"])).stdout).timeoutMs).toBe(
      600_000,
    );
    const metrics = JSON.parse((await run(["sandbox", "metrics", id, "--json"])).stdout);
    expect(metrics.memTotalMb).toBe(256);
  });

  it("sets egress rules at create and live: --allow-out, --deny-out, --no-internet", async () => {
    const made = await run([
      "sandbox",
      "create",
      "--json",
      "--memory",
      "256",
      "--disk",
      "128",
      "--allow-out",
      "*.example.com",
      "--allow-out",
      "203.0.113.0/24",
      "--deny-out",
      "203.0.113.7",
    ]);
    expect(made.code, made.stderr).toBe(0);
    const info = JSON.parse(made.stdout) as { sandboxId: string; network: unknown };
    expect(info.network).toEqual({
      allowInternetAccess: true,
      allowOut: ["*.example.com", "203.0.113.0/24"],
      denyOut: ["203.0.113.7"],
    });
    const sbx = info.sandboxId;
    const live = await run(["sandbox", "network", sbx, "--deny-out", "example.org"]);
    expect(live.stdout).toBe("Internet: allowed\nDeny out: example.org\n");
    expect((await run(["sandbox", "network", sbx, "--no-internet"])).stdout).toBe(
      "Internet: cut\n",
    );
    expect((await run(["sandbox", "info", sbx])).stdout).toMatch(/^Internet: +cut$/m);
    const bad = await run(["sandbox", "network", sbx, "--allow-out", "10.0.0.1/33"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("10.0.0.1/33");
    expect((await run(["sandbox", "kill", sbx])).code).toBe(0);
  });

  it("snapshots: create, start a sandbox from one, list, delete", async () => {
    const made = await run(["snapshot", "create", id, "cli-snap"]);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toBe("cli-snap\n");
    const list = JSON.parse((await run(["snapshot", "list", "--json"])).stdout) as {
      name: string;
      sourceSandboxId: string;
    }[];
    expect(list).toContainEqual(expect.objectContaining({ name: "cli-snap", sourceSandboxId: id }));
    const table = await run(["snapshot", "list"]);
    expect(table.stdout).toMatch(/^cli-snap\s+test-minimal\s/m);

    const child = (await run(["sandbox", "create", "--snapshot", "cli-snap"])).stdout.trim();
    expect(child).toMatch(ID);
    expect((await run(["files", "cat", child, "/tmp/up/top.txt"])).stdout).toBe("top\n");
    expect((await run(["sandbox", "kill", child])).code).toBe(0);

    expect((await run(["snapshot", "delete", "cli-snap"])).stdout).toBe("Deleted cli-snap\n");
    const again = await run(["snapshot", "delete", "cli-snap"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(
      "Error: No such snapshot: cli-snap.\n  → List them with `wrenn snapshot list`.\n",
    );
  });

  it("templates: builds from a Dockerfile (cached on rebuild), lists, starts a sandbox, removes", async () => {
    const dir = join(work, "dockerfile");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "greeting.txt"), "from the context\n");
    const dockerfile = (word: string) =>
      [
        "FROM wrenn/test-minimal",
        `ARG WORD=${word}`,
        "COPY greeting.txt /opt/",
        "RUN echo $WORD > /opt/word",
        "ENV NAME=cli",
        'CMD ["sleep", "600"]',
      ].join("\n");
    await writeFile(join(dir, "Dockerfile"), dockerfile("one"));
    const build = () =>
      run(["template", "build", "-f", join(dir, "Dockerfile"), "--name", "cli-tpl"]);
    const first = await build();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("COPY 1 file(s) → /opt/greeting.txt\n");
    expect(first.stdout).toContain("Built cli-tpl version 1\n");
    await writeFile(join(dir, "Dockerfile"), dockerfile("two"));
    const second = await build();
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain("COPY 1 file(s) → /opt/greeting.txt (cached)\n");
    expect(second.stdout).toContain("Built cli-tpl version 2\n");

    const list = JSON.parse((await run(["template", "list", "--json"])).stdout) as {
      name: string;
      version: number;
      base: string;
      sizeBytes?: number;
      startCmd?: string;
    }[];
    expect(list.map((t) => [t.name, t.version, t.base, t.startCmd])).toEqual([
      ["cli-tpl", 1, "test-minimal", "sleep 600"],
      ["cli-tpl", 2, "test-minimal", "sleep 600"],
    ]);
    // The COPY and RUN layers hold a few files: measured, so present and above zero.
    for (const t of list) expect(t.sizeBytes).toBeGreaterThan(0);
    const shown = (await run(["template", "list"])).stdout.split("\n");
    expect(shown[0]).toMatch(/^NAME\s+VERSION\s+BASE\s+SIZE\s+START COMMAND/);
    expect(shown[1]).toMatch(/^cli-tpl\s+1\s+test-minimal\s+\S+ [KMG]?i?B\s+sleep 600/);
    const child = (await run(["sandbox", "create", "--template", "cli-tpl"])).stdout.trim();
    expect(child).toMatch(ID);
    expect((await run(["files", "cat", child, "/opt/word"])).stdout).toBe("two\n");
    expect((await run(["files", "cat", child, "/opt/greeting.txt"])).stdout).toBe(
      "from the context\n",
    );
    expect((await run(["sandbox", "kill", child])).code).toBe(0);
    expect((await run(["template", "rm", "cli-tpl"])).stdout).toBe("Deleted cli-tpl\n");

    await writeFile(join(dir, "Dockerfile"), "FROM wrenn/test-minimal\nEXPOSE 80\n");
    const refused = await build();
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("line 2: EXPOSE: ports are not published");
  });

  it("fails with a short message and the next step: bad id, bad key, server down, no key", async () => {
    const badId = await run(["sandbox", "info", "nosuchsandbox"]);
    expect(badId.code).toBe(1);
    expect(badId.stdout).toBe("");
    expect(badId.stderr).toBe(
      'Error: Sandbox "nosuchsandbox" not found.\n  → List your sandboxes with `wrenn sandbox list`.\n',
    );
    expect((await run(["exec", "nosuchsandbox", "--", "true"])).stderr).toContain("not found");

    const badKey = await wrenn(["sandbox", "list"], {
      env: { ...server.env, WRENN_API_KEY: "wrn_wrong" },
    });
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toBe(
      `Error: The server at ${server.apiUrl} rejected the API key.\n  → Run \`wrenn login\` with a valid key, or set WRENN_API_KEY.\n`,
    );

    const down = `http://127.0.0.1:${await closedPort()}`;
    const unreachable = await wrenn(["sandbox", "list"], {
      env: { ...server.env, WRENN_API_URL: down },
    });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toBe(
      `Error: Cannot reach the Wrenn server at ${down}.\n  → Start one with \`sudo wrenn server start\`, or point --api-url / WRENN_API_URL at a running server.\n`,
    );

    const { WRENN_API_KEY: _, ...noKey } = server.env;
    const missing = await wrenn(["sandbox", "list"], {
      env: { ...noKey, WRENN_CONFIG: join(work, "none.json") },
    });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("Error: No API key");
    expect(missing.stderr).toContain("wrenn login");

    const debug = await run(["sandbox", "info", "nosuchsandbox", "--debug"]);
    expect(debug.stderr).toMatch(/\n\s+at /); // the stack, only with --debug

    const usage = await run(["exec"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("Missing 1 required arg");
    expect(usage.stderr).toContain("wrenn exec --help");
  });

  it("login validates and saves the key; whoami and logout use it", async () => {
    const configFile = join(work, "login.json");
    const { WRENN_API_KEY: key, WRENN_API_URL: url, ...rest } = server.env;
    const env = { ...rest, WRENN_CONFIG: configFile };
    const bad = await wrenn(["login", "--api-url", String(url), "--api-key", "wrn_wrong"], { env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("rejected the API key");
    const noKey = await wrenn(["login", "--api-url", String(url)], { env });
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toContain("Pass --api-key or set WRENN_API_KEY");

    const ok = await wrenn(["login", "--api-url", String(url), "--api-key", String(key)], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(await readFile(configFile, "utf8"))).toEqual({ api_url: url, api_key: key });
    const who = await wrenn(["whoami"], { env });
    expect(who.code, who.stderr).toBe(0);
    expect(who.stdout).toMatch(new RegExp(`\\(team .+\\) on ${url}\n$`));
    expect((await wrenn(["sandbox", "list", "--json"], { env })).code).toBe(0);

    expect((await wrenn(["logout"], { env })).stdout).toContain("Logged out");
    expect(JSON.parse(await readFile(configFile, "utf8"))).toEqual({ api_url: url });
    expect((await wrenn(["whoami"], { env })).stderr).toContain("No API key");
  });

  it("login --e2b-key makes an e2b_ key with the password, saves it and prints the E2B_* exports", async () => {
    const configFile = join(work, "login-e2b.json");
    const { WRENN_API_KEY: _key, WRENN_API_URL: url, ...rest } = server.env;
    const env = { ...rest, WRENN_CONFIG: configFile };
    // The first start printed the admin's password (not a terminal: the plain lines).
    const password = /password:\s+(\S+)/.exec(server.log())?.[1] as string;
    expect(password).toBeTruthy();
    const login = (...extra: string[]) =>
      wrenn(["login", "--api-url", String(url), "--e2b-key", ...extra], { env });

    const noPassword = await login("--email", "admin@wrenn.local");
    expect(noPassword.code).toBe(1);
    expect(noPassword.stderr).toContain("Pass --password or set WRENN_PASSWORD");
    const wrong = await login("--email", "admin@wrenn.local", "--password", "not the password");
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("refused the email or password");

    const ok = await login("--email", "admin@wrenn.local", "--password", password);
    expect(ok.code, ok.stderr).toBe(0);
    const key = /^export E2B_API_KEY=(e2b_[0-9a-f]+)$/m.exec(ok.stdout)?.[1];
    expect(key).toBeTruthy();
    expect(ok.stdout).toContain(`export E2B_API_URL=${url}\nexport E2B_SANDBOX_URL=${url}\n`);
    expect(JSON.parse(await readFile(configFile, "utf8"))).toEqual({ api_url: url, api_key: key });
    // The e2b_ key is a Wrenn key like any other.
    const who = await wrenn(["whoami"], { env });
    expect(who.code, who.stderr).toBe(0);
    expect(who.stdout).toContain('API key "e2b"');
  });

  it("creates a sandbox without public traffic and with auto-resume; its token comes with --json", async () => {
    const res = await run(["sandbox", "create", "--json", "--no-public-traffic", "--auto-resume"]);
    expect(res.code, res.stderr).toBe(0);
    const info = JSON.parse(res.stdout);
    expect(info).toMatchObject({ allowPublicTraffic: false, autoResume: true });
    expect(info.trafficAccessToken).toMatch(/^[0-9a-f]{64}$/);
    const plain = JSON.parse((await run(["sandbox", "info", info.sandboxId, "--json"])).stdout);
    expect(plain).toMatchObject({ allowPublicTraffic: false, autoResume: true });
    expect(plain.trafficAccessToken).toBeUndefined();
    await run(["sandbox", "kill", info.sandboxId]);
  });

  it("kill --all refuses without a terminal unless --yes; kill reports unknown ids", async () => {
    const refused = await run(["sandbox", "kill", "--all"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("without confirmation");
    expect(refused.stderr).toContain("--yes");

    const extra = (await run(["sandbox", "create"])).stdout.trim();
    const several = await run(["sandbox", "kill", extra, "nosuchsandbox"]);
    expect(several.stdout).toBe(`Killed ${extra}\n`);
    expect(several.code).toBe(1);
    expect(several.stderr).toContain("No such sandbox: nosuchsandbox");

    const all = await run(["sandbox", "kill", "--all", "--yes"]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toContain(`Killed ${id}`);
    expect(JSON.parse((await run(["sandbox", "list", "--json"])).stdout)).toEqual([]);
  });
});
