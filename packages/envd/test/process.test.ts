import { execFileSync } from "node:child_process";
import { chmod, writeFile } from "node:fs/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Process, Signal, type StreamInputRequestSchema } from "@wrenn/proto/process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { basicAuth, type RunningEnvd, startEnvd, TEST_USER } from "./helpers/envd.js";
import { EventReader } from "./helpers/events.js";

type InputMessage = MessageInitShape<typeof StreamInputRequestSchema>;
const text = (s: string) => new TextEncoder().encode(s);

async function expectCode(call: Promise<unknown>, code: Code): Promise<ConnectError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as ConnectError).code).toBe(code);
  return err as ConnectError;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const extraGroup = `wrenn-envd-x${process.pid}`;

/**
 * Every behaviour holds for both ways envd starts processes with pipes: its spawn helper
 * (wrenn-spawn, built with the bundle) and Node's spawn, the fallback without one.
 */
const spawners: [string, Record<string, string>][] = [
  ["the spawn helper", {}],
  ["Node's spawn", { WRENN_ENVD_SPAWN_HELPER: "0" }],
];

describe.each(spawners)("process.Process, started by %s", (_spawner, spawnerEnv) => {
  let envd: RunningEnvd;
  let run: (
    cmd: string,
    args?: string[],
    init?: Record<string, unknown>,
    headers?: Record<string, string>,
  ) => Promise<EventReader>;

  beforeAll(async () => {
    // A supplementary group for the test user, to see that groups survive the user switch.
    execFileSync("groupadd", [extraGroup]);
    execFileSync("usermod", ["-aG", extraGroup, TEST_USER]);
    envd = await startEnvd(spawnerEnv);
    await chmod(envd.dir, 0o755);
    run = (cmd, args = [], init = {}, headers = {}) => {
      const { envs, cwd, ...rest } = init as { envs?: Record<string, string>; cwd?: string };
      return new EventReader(
        envd.process.start({ process: { cmd, args, envs, cwd }, ...rest }, { headers }),
      ).toEnd();
    };
  });

  afterAll(async () => {
    await envd?.stop();
    execFileSync("gpasswd", ["-d", TEST_USER, extraGroup], { stdio: "ignore" });
    execFileSync("groupdel", [extraGroup]);
  });

  it("streams stdout and reports the exit code and status", async () => {
    const r = await run("sh", ["-c", "echo hello; exit 7"]);
    expect(r.pid).toBeGreaterThan(0);
    expect(r.stdout).toBe("hello\n");
    // E2B's envd sends Go's cmd.Wait() error too: the status again, for a failed process only.
    expect(r.end).toMatchObject({
      exitCode: 7,
      exited: true,
      status: "exit status 7",
      error: "exit status 7",
    });
    const ok = await run("true");
    expect(ok.end).toMatchObject({ exitCode: 0, exited: true, status: "exit status 0" });
    expect(ok.end?.error).toBeUndefined();
  });

  it("streams stderr separately", async () => {
    const r = await run("sh", ["-c", "echo out; echo oops >&2"]);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("oops\n");
  });

  it("passes envs and cwd, defaulting cwd to the user's home", async () => {
    const r = await run("sh", ["-c", 'echo "$FOO"; pwd'], {
      envs: { FOO: "bar baz" },
      cwd: envd.dir,
    });
    expect(r.stdout).toBe(`bar baz\n${envd.dir}\n`);
    const home = await run("sh", ["-c", 'pwd; echo "$HOME $USER $LOGNAME"; echo "$PATH"']);
    expect(home.stdout).toBe(
      `/home/${TEST_USER}\n/home/${TEST_USER} ${TEST_USER} ${TEST_USER}\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n`,
    );
  });

  it("runs as the default user with its groups, and as root on request", async () => {
    const uid = execFileSync("id", ["-u", TEST_USER], { encoding: "utf8" }).trim();
    const groups = execFileSync("id", ["-G", TEST_USER], { encoding: "utf8" })
      .trim()
      .split(" ")
      .sort();
    expect(groups.length).toBeGreaterThan(1);
    const r = await run("sh", ["-c", "id -u; id -G"]);
    const [gotUid, gotGroups = ""] = r.stdout.trim().split("\n");
    expect(gotUid).toBe(uid);
    expect(gotGroups.split(" ").sort()).toEqual(groups);

    const root = await run("sh", ["-c", 'id -u; id -G; echo "$HOME $USER"'], {}, basicAuth("root"));
    expect(root.stdout).toBe("0\n0\n/root root\n");

    await expectCode(run("true", [], {}, basicAuth("no-such-user-here")), Code.InvalidArgument);
  });

  it("runs a shell in a PTY: type, read, resize", async () => {
    const shell = new EventReader(
      envd.process.start({ process: { cmd: "sh" }, pty: { size: { cols: 80, rows: 24 } } }),
    );
    await shell.started();
    const pid = { process: { selector: { case: "pid" as const, value: shell.pid } } };
    await envd.process.sendInput({
      ...pid,
      input: { input: { case: "pty", value: text("echo $((6*7)); id -u; stty size\n") } },
    });
    await shell.until(() => /42\r?\n\d+\r?\n24 80/.test(shell.pty));

    await envd.process.update({ ...pid, pty: { size: { cols: 100, rows: 30 } } });
    await envd.process.sendInput({
      ...pid,
      input: { input: { case: "pty", value: text("stty size\n") } },
    });
    await shell.until(() => shell.pty.includes("30 100"));

    await expectCode(envd.process.closeStdin(pid), Code.FailedPrecondition);
    await expectCode(
      envd.process.update({ ...pid, pty: { size: { cols: 0, rows: 30 } } }),
      Code.InvalidArgument,
    );
    // Ctrl-D ends the shell, as CloseStdin's error suggests.
    await envd.process.sendInput({
      ...pid,
      input: { input: { case: "pty", value: text("\x04") } },
    });
    await shell.toEnd();
    expect(shell.end).toMatchObject({ exitCode: 0, exited: true });
  });

  it("keeps background processes when their stream drops, and re-attaches by pid and tag", async () => {
    const tag = `bg-${process.pid}`;
    const abort = new AbortController();
    const first = new EventReader(
      envd.process.start(
        {
          process: {
            cmd: "sh",
            args: ["-c", "echo ready; read a; echo got $a; read b; echo bye $b"],
          },
          tag,
          stdin: true,
        },
        { signal: abort.signal },
      ),
    );
    await first.until(() => first.stdout === "ready\n");
    abort.abort();
    await expect(first.toEnd()).rejects.toThrow();

    const listed = await envd.process.list({});
    const entry = listed.processes.find((p) => p.pid === first.pid);
    expect(entry).toMatchObject({ tag, config: { cmd: "sh" } });
    // Starts with one tag at the same moment: exactly one runs.
    const sameTag = `race-${process.pid}`;
    const racing = await Promise.allSettled(
      Array.from({ length: 4 }, () =>
        new EventReader(
          envd.process.start({ process: { cmd: "sleep", args: ["30"] }, tag: sameTag }),
        ).started(),
      ),
    );
    const won = racing.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of racing) {
      if (r.status === "rejected") expect((r.reason as ConnectError).code).toBe(Code.AlreadyExists);
    }
    await envd.process.sendSignal({
      process: { selector: { case: "tag", value: sameTag } },
      signal: 9,
    });
    await expectCode(
      new EventReader(envd.process.start({ process: { cmd: "true" }, tag })).started(),
      Code.AlreadyExists,
    );

    const byPidAbort = new AbortController();
    const byPid = new EventReader(
      envd.process.connect(
        { process: { selector: { case: "pid", value: first.pid } } },
        { signal: byPidAbort.signal },
      ),
    );
    await byPid.started();
    expect(byPid.pid).toBe(first.pid);
    await envd.process.sendInput({
      process: { selector: { case: "tag", value: tag } },
      input: { input: { case: "stdin", value: text("one\n") } },
    });
    await byPid.until(() => byPid.stdout === "got one\n");
    byPidAbort.abort();

    const byTag = new EventReader(
      envd.process.connect({ process: { selector: { case: "tag", value: tag } } }),
    );
    await byTag.started();
    await envd.process.sendInput({
      process: { selector: { case: "pid", value: first.pid } },
      input: { input: { case: "stdin", value: text("two\n") } },
    });
    await byTag.toEnd();
    expect(byTag.stdout).toBe("bye two\n");
    expect(byTag.end).toMatchObject({ exitCode: 0, exited: true });
    expect(
      (await envd.process.list({})).processes.find((p) => p.pid === first.pid),
    ).toBeUndefined();
  });

  it("closes stdin for EOF", async () => {
    const cat = new EventReader(envd.process.start({ process: { cmd: "cat" }, stdin: true }));
    await cat.started();
    const pid = { process: { selector: { case: "pid" as const, value: cat.pid } } };
    await envd.process.sendInput({
      ...pid,
      input: { input: { case: "stdin", value: text("hello\n") } },
    });
    await envd.process.sendInput({
      ...pid,
      input: { input: { case: "stdin", value: text("world\n") } },
    });
    await envd.process.closeStdin(pid);
    await cat.toEnd();
    expect(cat.stdout).toBe("hello\nworld\n");
    expect(cat.end).toMatchObject({ exitCode: 0, exited: true });

    // Without stdin: true, stdin is closed at start.
    const closed = await run("cat");
    expect(closed.end?.exitCode).toBe(0);
    const noStdin = new EventReader(
      envd.process.start({ process: { cmd: "sleep", args: ["30"] } }),
    );
    await noStdin.started();
    const sel = { process: { selector: { case: "pid" as const, value: noStdin.pid } } };
    await expectCode(
      envd.process.sendInput({ ...sel, input: { input: { case: "stdin", value: text("x") } } }),
      Code.FailedPrecondition,
    );
    await expectCode(
      envd.process.update({ ...sel, pty: { size: { cols: 80, rows: 24 } } }),
      Code.FailedPrecondition,
    );
    await envd.process.sendSignal({ ...sel, signal: Signal.SIGKILL });
    await noStdin.toEnd();
  });

  it("applies StreamInput chunks in order", async () => {
    const cat = new EventReader(envd.process.start({ process: { cmd: "cat" }, stdin: true }));
    await cat.started();
    const lines = Array.from({ length: 500 }, (_, i) => `line ${i}\n`);
    async function* input(): AsyncGenerator<InputMessage> {
      yield {
        event: {
          case: "start" as const,
          value: { process: { selector: { case: "pid" as const, value: cat.pid } } },
        },
      };
      for (const line of lines)
        yield {
          event: {
            case: "data" as const,
            value: { input: { input: { case: "stdin" as const, value: text(line) } } },
          },
        };
      yield { event: { case: "keepalive" as const, value: {} } };
    }
    await envd.process.streamInput(input());
    await envd.process.closeStdin({ process: { selector: { case: "pid", value: cat.pid } } });
    await cat.toEnd();
    expect(cat.stdout).toBe(lines.join(""));

    async function* dataFirst(): AsyncGenerator<InputMessage> {
      yield {
        event: {
          case: "data" as const,
          value: { input: { input: { case: "stdin" as const, value: text("x") } } },
        },
      };
    }
    await expectCode(envd.process.streamInput(dataFirst()), Code.InvalidArgument);
  });

  it("sends SIGTERM and SIGKILL", async () => {
    for (const [signal, status] of [
      [Signal.SIGTERM, "signal: terminated"],
      [Signal.SIGKILL, "signal: killed"],
    ] as const) {
      const sleeper = new EventReader(
        envd.process.start({ process: { cmd: "sleep", args: ["60"] } }),
      );
      await sleeper.started();
      await envd.process.sendSignal({
        process: { selector: { case: "pid", value: sleeper.pid } },
        signal,
      });
      await sleeper.toEnd();
      expect(sleeper.end).toMatchObject({ exitCode: -1, exited: false, status, error: status });
    }
    const sleeper = new EventReader(
      envd.process.start({ process: { cmd: "sleep", args: ["60"] } }),
    );
    await sleeper.started();
    const sel = { process: { selector: { case: "pid" as const, value: sleeper.pid } } };
    await expectCode(
      envd.process.sendSignal({ ...sel, signal: Signal.UNSPECIFIED }),
      Code.InvalidArgument,
    );
    await envd.process.sendSignal({ ...sel, signal: Signal.SIGKILL });
    await sleeper.toEnd();
  });

  it("answers not_found for unknown pids and tags, invalid_argument for bad requests", async () => {
    const unknownPid = { process: { selector: { case: "pid" as const, value: 2 ** 31 } } };
    const unknownTag = { process: { selector: { case: "tag" as const, value: "no-such-tag" } } };
    await expectCode(new EventReader(envd.process.connect(unknownPid)).started(), Code.NotFound);
    await expectCode(new EventReader(envd.process.connect(unknownTag)).started(), Code.NotFound);
    await expectCode(
      envd.process.sendInput({
        ...unknownTag,
        input: { input: { case: "stdin", value: text("x") } },
      }),
      Code.NotFound,
    );
    await expectCode(
      envd.process.sendSignal({ ...unknownPid, signal: Signal.SIGTERM }),
      Code.NotFound,
    );
    await expectCode(envd.process.closeStdin(unknownPid), Code.NotFound);
    await expectCode(
      envd.process.update({ ...unknownTag, pty: { size: { cols: 1, rows: 1 } } }),
      Code.NotFound,
    );
    await expectCode(envd.process.sendSignal({ signal: Signal.SIGTERM }), Code.InvalidArgument);

    await expectCode(run(""), Code.InvalidArgument);
    await expectCode(new EventReader(envd.process.start({})).started(), Code.InvalidArgument);
    await expectCode(run("echo", ["a\0b"]), Code.InvalidArgument);
    await expectCode(run("env", [], { envs: { "A=B": "c" } }), Code.InvalidArgument);
    await expectCode(run("sh", [], { pty: { size: { cols: 0, rows: 0 } } }), Code.InvalidArgument);
  });

  it("refuses a cwd it cannot run in before starting anything, as E2B's envd", async () => {
    const file = `${envd.dir}/plain-file`;
    await writeFile(file, "x");
    const before = (await envd.process.list({})).processes.length;
    for (const [cwd, message] of [
      ["/no/such/dir", "cwd '/no/such/dir' does not exist"],
      [file, `cwd '${file}' is not a directory`],
    ] as const) {
      for (const pty of [{}, { pty: { size: { cols: 80, rows: 24 } } }]) {
        const err = await expectCode(run("true", [], { cwd, ...pty }), Code.InvalidArgument);
        expect(err.rawMessage).toBe(message);
      }
    }
    expect((await envd.process.list({})).processes.length).toBe(before);
  });

  it("ends a missing command with a non-zero exit and the error, and keeps serving", async () => {
    const missing = await run("definitely-not-a-command");
    expect(missing.end?.exitCode).not.toBe(0);
    expect(missing.end?.error).toContain("definitely-not-a-command");
    const inPty = await run("definitely-not-a-command", [], {
      pty: { size: { cols: 80, rows: 24 } },
    });
    expect(inPty.end?.error).toContain("not found");
    expect((await run("echo", ["still here"])).stdout).toBe("still here\n");
  });

  it("ends when the process exits even if a background child keeps its output open", async () => {
    const r = await run("sh", ["-c", "sleep 60 & echo $!"]);
    process.kill(Number(r.stdout.trim()), "SIGKILL");
    expect(r.end).toMatchObject({ exitCode: 0, exited: true });
  });

  it("sends keepalive events on idle streams at the requested interval", async () => {
    const idle = new EventReader(
      envd.process.start(
        { process: { cmd: "cat" }, stdin: true },
        { headers: { "keepalive-ping-interval": "1" } },
      ),
    );
    await idle.until(() => idle.keepalives >= 2);
    await envd.process.closeStdin({ process: { selector: { case: "pid", value: idle.pid } } });
    await idle.toEnd();
  });

  it("works over h2c", async () => {
    const h2 = createClient(Process, envd.transport("2"));
    const r = await new EventReader(
      h2.start({ process: { cmd: "sh", args: ["-c", "echo over h2; exit 2"] } }),
    ).toEnd();
    expect(r.stdout).toBe("over h2\n");
    expect(r.end?.exitCode).toBe(2);
    expect((await h2.list({})).processes).toBeInstanceOf(Array);
  });
});

describe.each(spawners)("envd shutdown, processes started by %s", (_spawner, spawnerEnv) => {
  it("ends every process it started: SIGTERM, then SIGKILL for those that ignore it", async () => {
    const envd = await startEnvd(spawnerEnv);
    try {
      const pids: number[] = [];
      for (const script of ["sleep 1000", 'trap "" TERM; while :; do sleep 0.1; done']) {
        const abort = new AbortController();
        const r = new EventReader(
          envd.process.start(
            { process: { cmd: "sh", args: ["-c", script] } },
            { signal: abort.signal },
          ),
        );
        await r.started();
        abort.abort();
        pids.push(r.pid);
      }
      expect(pids.every(pidAlive)).toBe(true);
      await envd.stop();
      expect(pids.filter(pidAlive)).toEqual([]);
    } finally {
      await envd.stop();
    }
  }, 20_000);
});
