import { rm } from "node:fs/promises";
import { Sandbox } from "e2b";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SpawnedEnvd, spawnEnvd } from "../src/spawn.js";
import { TEST_USER } from "./global-setup.js";

// E2B's own SDK, unchanged, in its debug mode: it skips E2B's API and talks to envd on
// localhost:49983 directly. This is the wire-compatibility proof for code written for E2B.
const home = `/home/${TEST_USER}`;
const dir = `${home}/e2b-compat-${process.pid}`;

describe("E2B's SDK against envd", () => {
  let envd: SpawnedEnvd;
  let sandbox: Sandbox;

  beforeAll(async () => {
    envd = await spawnEnvd({ port: 49983, env: { WRENN_ENVD_USER: TEST_USER } });
    sandbox = await Sandbox.create({ debug: true });
  });

  afterAll(async () => {
    await envd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("runs commands and reports exit codes", async () => {
    const result = await sandbox.commands.run("echo hello; echo oops >&2; id -un");
    expect(result.stdout).toBe(`hello\n${TEST_USER}\n`);
    expect(result.stderr).toBe("oops\n");
    expect(result.exitCode).toBe(0);
    await expect(sandbox.commands.run("exit 3")).rejects.toMatchObject({ exitCode: 3 });
    const asRoot = await sandbox.commands.run("id -u", { user: "root" });
    expect(asRoot.stdout.trim()).toBe("0");
  });

  it("streams output and passes cwd and envs", async () => {
    const chunks: string[] = [];
    const result = await sandbox.commands.run('for i in 1 2 3; do echo "$GREETING $i"; done; pwd', {
      envs: { GREETING: "hi" },
      cwd: "/tmp",
      onStdout: (data) => void chunks.push(data),
    });
    expect(result.stdout).toBe("hi 1\nhi 2\nhi 3\n/tmp\n");
    expect(chunks.join("")).toBe(result.stdout);
  });

  it("keeps background commands and reconnects to them", async () => {
    const handle = await sandbox.commands.run("read line; echo got $line", {
      background: true,
      stdin: true,
    });
    const listed = await sandbox.commands.list();
    expect(listed.map((p) => p.pid)).toContain(handle.pid);
    await handle.disconnect();
    const again = await sandbox.commands.connect(handle.pid);
    await sandbox.commands.sendStdin(handle.pid, "ping\n");
    const result = await again.wait();
    expect(result.stdout).toBe("got ping\n");
  });

  it("writes, reads, lists and removes files", async () => {
    await sandbox.files.makeDir(dir);
    await sandbox.files.write(`${dir}/a.txt`, "alpha");
    await sandbox.files.write([
      { path: `${dir}/sub/b.txt`, data: "beta" },
      { path: `${dir}/c.bin`, data: new Uint8Array([0, 1, 2, 255]).buffer },
    ]);
    expect(await sandbox.files.read(`${dir}/a.txt`)).toBe("alpha");
    expect(await sandbox.files.read(`${dir}/sub/b.txt`)).toBe("beta");
    expect([...(await sandbox.files.read(`${dir}/c.bin`, { format: "bytes" }))]).toEqual([
      0, 1, 2, 255,
    ]);
    const names = (await sandbox.files.list(dir)).map((e) => e.name).sort();
    expect(names).toEqual(["a.txt", "c.bin", "sub"]);
    expect(await sandbox.files.exists(`${dir}/a.txt`)).toBe(true);
    await sandbox.files.rename(`${dir}/a.txt`, `${dir}/renamed.txt`);
    await sandbox.files.remove(`${dir}/sub`);
    expect(await sandbox.files.exists(`${dir}/sub`)).toBe(false);
    const info = await sandbox.files.getInfo(`${dir}/renamed.txt`);
    expect(info).toMatchObject({ name: "renamed.txt", type: "file", size: 5, owner: TEST_USER });
  });

  it("opens a PTY", async () => {
    let output = "";
    const decoder = new TextDecoder();
    const terminal = await sandbox.pty.create({
      cols: 80,
      rows: 24,
      onData: (data) => {
        output += decoder.decode(data);
      },
    });
    await sandbox.pty.resize(terminal.pid, { cols: 100, rows: 30 });
    await sandbox.pty.sendInput(terminal.pid, new TextEncoder().encode("stty size; exit\n"));
    await terminal.wait();
    expect(output).toContain("30 100");
  });
});
