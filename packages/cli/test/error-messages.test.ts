import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wrenn } from "./helpers/cli.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

// What the built `wrenn` binary says when the server, a sandbox or the local setup refuses:
// one line naming the real cause and a next step that fits it. Against `wrenn server start`
// with real namespace sandboxes. Needs root, bubblewrap, iproute2, nftables, e2fsprogs.

describe("wrenn's error messages", { timeout: 120_000 }, () => {
  let server: TestServer;
  let work: string;
  const run = (args: string[], env: NodeJS.ProcessEnv = server.env) => wrenn(args, { env });

  beforeAll(async () => {
    server = await startTestServer();
    work = await mkdtemp(join(tmpdir(), "wrenn-cli-errors-"));
  }, 180_000);

  afterAll(async () => {
    await rm(work ?? "/nonexistent", { recursive: true, force: true });
    await server?.close();
  }, 120_000);

  it("a refusal that is not about the key (a quota, a file the sandbox user may not write) says so", async () => {
    const quota = await run(["sandbox", "create", "--memory", "262144"]);
    expect(quota.code).toBe(1);
    expect(quota.stderr).toMatch(
      /^Error: Quota memory_mb: the team uses \d+ of \d+ and this asks for 262144 more\.\n$/,
    );

    const created = await run(["sandbox", "create", "--memory", "256", "--disk", "128"]);
    expect(created.code, created.stderr).toBe(0);
    const id = created.stdout.trim();
    const denied = await run(["files", "mkdir", id, "/proc/x"]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toBe('Error: Mkdir: user "user" may not write into /proc.\n');
    expect((await run(["sandbox", "kill", id])).code).toBe(0);
  });

  it("a missing template points at the template list, not at a sandbox's files", async () => {
    const missing = await run(["sandbox", "create", "--template", "nosuchtemplate"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^Error: .*template "?nosuchtemplate"? not found\.\n/i);
    expect(missing.stderr).toContain("→ List the templates with `wrenn template list`.");
    expect(missing.stderr).not.toContain("files ls");
  });

  it("a config file that is not a JSON object is named, for commands, login and logout alike", async () => {
    const { WRENN_API_KEY: _key, WRENN_API_URL: url, ...rest } = server.env;
    for (const text of ["{not json", "[1, 2]", "null"]) {
      const file = join(work, "broken.json");
      await writeFile(file, text);
      const env = { ...rest, WRENN_CONFIG: file };
      const expected = `Error: The config file ${file} is not a JSON object.\n  → Fix it, or delete it and run \`wrenn login\` again.\n`;
      for (const args of [
        ["sandbox", "list"],
        ["login", "--api-url", String(url), "--api-key", String(server.apiKey)],
        ["logout"],
      ]) {
        const res = await run(args, env);
        expect(res.code, `${args[0]} with ${text}`).toBe(1);
        expect(res.stderr, `${args[0]} with ${text}`).toBe(expected);
      }
    }
    // A key in the environment still works past a broken file, as the SDK's own rules say.
    expect(
      (await run(["sandbox", "list"], { ...server.env, WRENN_CONFIG: join(work, "broken.json") }))
        .code,
    ).toBe(0);
  });

  it("a server URL that is not http(s) is named with where it came from", async () => {
    for (const bad of ["garbage", "http://[::1", "ftp://example.com"]) {
      const res = await run(["sandbox", "list"], { ...server.env, WRENN_API_URL: bad });
      expect(res.code, bad).toBe(1);
      expect(res.stderr, bad).toBe(
        `Error: --api-url / WRENN_API_URL is ${JSON.stringify(bad)}, not an http:// or https:// URL.\n  → Example: --api-url http://127.0.0.1:3000\n`,
      );
      const login = await run(["login", "--api-url", bad, "--api-key", "k"]);
      expect(login.code, bad).toBe(1);
      expect(login.stderr, bad).toContain(
        `is ${JSON.stringify(bad)}, not an http:// or https:// URL.`,
      );
    }
    const file = join(work, "bad-url.json");
    await writeFile(file, JSON.stringify({ api_url: "nope", api_key: server.apiKey }));
    const { WRENN_API_KEY: _key, WRENN_API_URL: _url, ...rest } = server.env;
    const fromFile = await run(["sandbox", "list"], { ...rest, WRENN_CONFIG: file });
    expect(fromFile.stderr).toContain(
      `Error: api_url in ${file} is "nope", not an http:// or https:// URL.`,
    );
  });

  it("exec says why a command did not start (a missing --cwd), keeping the shell's exit code", async () => {
    const created = await run(["sandbox", "create", "--memory", "256", "--disk", "128"]);
    expect(created.code, created.stderr).toBe(0);
    const id = created.stdout.trim();
    const res = await run(["exec", id, "--cwd", "/nonexistent", "--", "true"]);
    expect(res.code).toBe(127);
    expect(res.stdout).toBe("");
    expect(res.stderr).toBe(
      "Error: The command did not start: start: cwd '/nonexistent' does not exist\n",
    );
    // A command that ran and failed prints only its own output.
    const ran = await run(["exec", id, "--cwd", "/tmp", "--", "sh", "-c", "pwd; exit 3"]);
    expect([ran.code, ran.stdout, ran.stderr]).toEqual([3, "/tmp\n", ""]);
    expect((await run(["sandbox", "kill", id])).code).toBe(0);
  });

  it("a bad argument is a usage error (exit 2, the command's --help), with no oclif warning", async () => {
    // oclif adds a "did not parse its arguments" warning when NODE_ENV is development or test.
    const env = { ...server.env, NODE_ENV: "development" };
    const port = await run(["sandbox", "url", "k3x9q2m7v1b8n4c6z0ta", "99999"], env);
    expect([port.code, port.stderr]).toEqual([
      2,
      "Error: Expected an integer less than or equal to 65535 but received: 99999\n  → See `wrenn sandbox url --help`.\n",
    ]);
    const missing = await run(["sandbox", "info"], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      "Error: Missing 1 required arg:\n  id  Sandbox id.\n  → See `wrenn sandbox info --help`.\n",
    );
  });

  it("a file's conflict, in the sandbox or on this machine, says which file; the paused hint only for the sandbox", async () => {
    const created = await run(["sandbox", "create", "--memory", "256", "--disk", "128"]);
    expect(created.code, created.stderr).toBe(0);
    const id = created.stdout.trim();
    expect((await run(["exec", id, "--", "touch", "/tmp/f"])).code).toBe(0);
    const notDir = await run(["files", "ls", id, "/tmp/f"]);
    expect([notDir.code, notDir.stderr]).toEqual([1, "Error: List: not a directory: /tmp/f.\n"]);
    const exists = await run(["files", "mkdir", id, "/tmp/f/x"]);
    expect(exists.code).toBe(1);
    expect(exists.stderr).not.toContain("→");

    // A local file it cannot write: which, and why; no --debug hint for what is not a bug.
    const target = join(work, "no-such-dir", "passwd");
    const local = await run(["files", "cp", `${id}:/etc/passwd`, target]);
    expect([local.code, local.stderr]).toEqual([
      1,
      `Error: Cannot open ${target} on this machine: no such file or directory.\n`,
    ]);

    expect((await run(["sandbox", "pause", id])).code).toBe(0);
    const paused = await run(["sandbox", "fork", id]);
    expect(paused.code).toBe(1);
    expect(paused.stderr).toContain("paused");
    expect(paused.stderr).toContain("→ Check its state with `wrenn sandbox info <id>`");
    expect((await run(["sandbox", "kill", id])).code).toBe(0);
  });
});
