import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, wrenn } from "./helpers/cli.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

// `wrenn exec -it` in a real terminal: tmux runs the built binary in a pane we type into
// (send-keys) and read (capture-pane). Needs tmux (apt-get install -y tmux) besides what the
// server needs.

const run = promisify(execFile);

describe("wrenn exec -it through tmux", { timeout: 120_000 }, () => {
  let server: TestServer;
  let dir: string;
  let id: string;
  // The socket lives in the test's temp dir, so removing the dir leaves nothing behind.
  const tmux = (...args: string[]) =>
    run("tmux", ["-S", join(dir, "tmux.sock"), "-f", "/dev/null", ...args], { env: terminalEnv() });
  const screen = async (session: string) =>
    (await tmux("capture-pane", "-p", "-t", session)).stdout;
  const waitFor = async (what: () => Promise<string>, pattern: RegExp, withinMs = 20_000) => {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const text = await what();
      if (pattern.test(text)) return text;
      if (Date.now() > deadline) {
        const panes = await tmux("list-panes", "-a", "-F", "#{session_name}").then(
          (r) => r.stdout.trim().split("\n"),
          () => [],
        );
        const screens = await Promise.all(panes.map(async (p) => `--- ${p}:\n${await screen(p)}`));
        throw new Error(`never saw ${pattern} in:\n${text}\n${screens.join("\n")}`);
      }
      await sleep(100);
    }
  };
  // A person at a terminal: without CI's variables (in CI, Ink draws only last frames and the
  // CLI does not prompt).
  const terminalEnv = () => {
    const env = { ...server.env };
    delete env.CI;
    delete env.CONTINUOUS_INTEGRATION;
    return env;
  };
  const fileText = (name: string) => () => readFile(join(dir, name), "utf8").catch(() => "");
  /** A detached 100x30 pane running `wrenn exec -it …`, then recording its exit code and stty. */
  const open = (session: string, args: string[]) =>
    tmux(
      "new-session",
      "-d",
      "-s",
      session,
      "-x",
      "100",
      "-y",
      "30",
      `${process.execPath} ${BIN} exec -it ${args.join(" ")}; echo "EXIT=$?" > ${dir}/${session}.exit; stty -a > ${dir}/${session}.stty; sleep 600`,
    );

  beforeAll(async () => {
    server = await startTestServer();
    dir = await mkdtemp(join(tmpdir(), "wrenn-cli-tty-"));
    const created = await wrenn(["sandbox", "create", "--memory", "256", "--disk", "128"], {
      env: terminalEnv(),
    });
    id = created.stdout.trim();
  }, 180_000);

  afterAll(async () => {
    if (dir) await tmux("kill-server").catch(() => {});
    await rm(dir ?? "/nonexistent", { recursive: true, force: true });
    await server?.close();
  }, 120_000);

  it("shows a prompt, follows resizes, passes Ctrl-C, exits with the shell's code and restores the terminal", async () => {
    await open("shell", [id]); // the default user, `user`
    await waitFor(() => screen("shell"), /^~ \$\s*$/m); // capture-pane trims trailing spaces

    await tmux("send-keys", "-t", "shell", "stty size", "Enter");
    await waitFor(() => screen("shell"), /^30 100$/m);

    await tmux("resize-window", "-t", "shell", "-x", "120", "-y", "40");
    await tmux("send-keys", "-t", "shell", "stty size", "Enter");
    await waitFor(() => screen("shell"), /^40 120$/m);

    // Ctrl-C reaches the sandbox's foreground process, not the local CLI.
    await tmux("send-keys", "-t", "shell", "sleep 100", "Enter");
    await waitFor(() => screen("shell"), /sleep 100\n/);
    await tmux("send-keys", "-t", "shell", "C-c");
    await tmux("send-keys", "-t", "shell", "echo after-$((40+2))", "Enter");
    await waitFor(() => screen("shell"), /^after-42$/m);

    await tmux("send-keys", "-t", "shell", "exit 3", "Enter");
    expect(await waitFor(fileText("shell.exit"), /EXIT=\d+/)).toBe("EXIT=3\n");
    const stty = await waitFor(fileText("shell.stty"), /icanon/);
    expect(stty).toMatch(/(^|\s)icanon\b/); // raw mode undone
    expect(stty).toMatch(/(^|\s)echo\b/);
  });

  it("restores the terminal when the CLI is killed mid-session", async () => {
    await open("killed", [id]);
    await waitFor(() => screen("killed"), /^~ \$\s*$/m);
    const shellPid = (await tmux("list-panes", "-t", "killed", "-F", "#{pane_pid}")).stdout.trim();
    // The pane's shell runs the CLI as its child.
    const children = await readFile(`/proc/${shellPid}/task/${shellPid}/children`, "utf8");
    const cliPid = Number(children.trim().split(/\s+/)[0]);
    expect(cliPid).toBeGreaterThan(0);
    process.kill(cliPid, "SIGTERM");
    expect(await waitFor(fileText("killed.exit"), /EXIT=\d+/)).toBe("EXIT=143\n");
    expect(await waitFor(fileText("killed.stty"), /icanon/)).toMatch(/(^|\s)icanon\b/);
  });

  it("passes Ctrl-D through as end of input", async () => {
    await open("eof", [id, "--", "cat"]);
    await tmux("send-keys", "-t", "eof", "typed", "Enter");
    await waitFor(() => screen("eof"), /^typed\ntyped$/m);
    await tmux("send-keys", "-t", "eof", "C-d");
    expect(await waitFor(fileText("eof.exit"), /EXIT=\d+/)).toBe("EXIT=0\n");
  });

  it("draws Ink on a terminal: the cp progress bar, the kill --all question, the login prompt", async () => {
    // A local shell in a pane; each wrenn run records its exit code in a file.
    await tmux("new-session", "-d", "-s", "local", "-x", "120", "-y", "30", "sh");
    const type = (line: string) => tmux("send-keys", "-t", "local", line, "Enter");
    const wrennLine = (args: string, name: string) =>
      type(`${process.execPath} ${BIN} ${args}; echo $? > ${dir}/${name}.code`);

    await writeFile(join(dir, "blob"), randomBytes(4 * 1024 * 1024));
    await wrennLine(`files cp ${dir}/blob ${id}:/tmp/blob`, "cp");
    expect(await waitFor(fileText("cp.code"), /\d/)).toBe("0\n");
    const after = await screen("local");
    expect(after).toMatch(/█+ 100%\s+4\.0 MiB \/ 4\.0 MiB/);
    expect(after).toContain(`Copied 1 file(s), 4.0 MiB to ${id}:/tmp/blob`);

    await wrennLine("sandbox kill --all", "kill");
    await waitFor(() => screen("local"), /Kill all 1 sandbox\(es\)\? \(y\/N\)/);
    await tmux("send-keys", "-t", "local", "n");
    expect(await waitFor(fileText("kill.code"), /\d/)).toBe("0\n");
    expect(await screen("local")).toMatch(/\(y\/N\) no\s+Nothing killed\./);

    await type(`unset WRENN_API_KEY; export WRENN_CONFIG=${dir}/login.json`);
    await wrennLine(`login --api-url ${server.apiUrl}`, "login");
    await waitFor(() => screen("local"), /API key for .*:/);
    await tmux("send-keys", "-t", "local", "-l", server.apiKey);
    await tmux("send-keys", "-t", "local", "Enter");
    expect(await waitFor(fileText("login.code"), /\d/)).toBe("0\n");
    const screenText = await screen("local");
    expect(screenText).not.toContain(server.apiKey); // masked
    expect(screenText).toContain(`Logged in to ${server.apiUrl}`);
    expect(JSON.parse(await readFile(join(dir, "login.json"), "utf8")).api_key).toBe(server.apiKey);
  });
});
