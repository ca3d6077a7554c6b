import { createServer } from "node:http";
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import {
  ApiClient,
  CommandExitError,
  type CommandHandle,
  Commands,
  type OutputChunk,
  Sandbox,
  SandboxError,
  TimeoutError,
  WrennError,
} from "../src/index.js";
import { ResettingProxy } from "./helpers/reset-proxy.js";
import { SMALL, startTestServer, type TestServer } from "./helpers/server.js";

// commands and pty over the server's exec stream WebSocket and processes routes, against a real
// single-host server with one real test-minimal sandbox shared by the file.

let server: TestServer;
let sandbox: Sandbox;

beforeAll(async () => {
  server = await startTestServer();
  sandbox = await Sandbox.create({ apiUrl: server.url, apiKey: server.apiKey, ...SMALL });
});

afterAll(async () => {
  await server?.close();
});

/** Polls until `check` holds; fails after `withinMs`. */
async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string | (() => string),
  withinMs = 10_000,
) {
  const deadline = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`);
    await sleep(25);
  }
}

describe("commands.run", () => {
  it("runs to completion (one request) with cwd, envs and args", async () => {
    const result = await sandbox.commands.run('echo "$GREETING from $(pwd)"; echo oops >&2', {
      cwd: "/tmp",
      envs: { GREETING: "hello" },
    });
    expect(result).toMatchObject({ stdout: "hello from /tmp\n", stderr: "oops\n", exitCode: 0 });
    const direct = await sandbox.commands.run("printf", { args: ["%s-%s", "a b", "c"] });
    expect(direct.stdout).toBe("a b-c");
  });

  it("runs many commands at once as the sandbox's user", async () => {
    // envd opens each process's pipes through the spawn helper's /proc fds: a concurrent spawn
    // switching uid made those opens fail with EACCES.
    const n = Array.from({ length: 12 }, (_, i) => i);
    for (let round = 0; round < 8; round++) {
      const results = await Promise.all(n.map((i) => sandbox.commands.run(`echo ${i}`)));
      expect(results.map((r) => r.stdout)).toEqual(n.map((i) => `${i}\n`));
    }
  });

  it("throws CommandExitError with the result on a non-zero exit, unless told not to", async () => {
    const err = await sandbox.commands
      .run("echo out; echo bad >&2; exit 3")
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandExitError);
    expect(err).toMatchObject({ exitCode: 3, stdout: "out\n", stderr: "bad\n" });
    const result = await sandbox.commands.run("exit 4", { throwOnError: false });
    expect(result.exitCode).toBe(4);
    // The streamed path ends the same way.
    await expect(sandbox.commands.run("exit 5", { onStdout: () => {} })).rejects.toMatchObject({
      exitCode: 5,
    });
  });

  it("streams output to callbacks as it is written", async () => {
    const seen: string[] = [];
    const errs: string[] = [];
    const result = await sandbox.commands.run(
      "for i in 1 2 3; do echo $i; sleep 0.05; done; echo e >&2",
      {
        onStdout: (s) => seen.push(s),
        onStderr: (s) => errs.push(s),
      },
    );
    expect(seen.join("")).toBe("1\n2\n3\n");
    expect(seen.length).toBeGreaterThan(1);
    expect(errs.join("")).toBe("e\n");
    expect(result.stdout).toBe("1\n2\n3\n");
  });

  it("feeds stdin from a string or an async iterable", async () => {
    expect((await sandbox.commands.run("cat", { stdin: "piped\n" })).stdout).toBe("piped\n");
    async function* lines() {
      yield new TextEncoder().encode("a\n");
      yield "b\n";
    }
    expect((await sandbox.commands.run("wc -l", { stdin: lines() })).stdout.trim()).toBe("2");
  });

  it("returns the result of a command that ends before reading all of its stdin", async () => {
    async function* endless() {
      for (let i = 0; ; i++) {
        yield `line ${i}\n`;
        await sleep(5);
      }
    }
    const result = await sandbox.commands.run("head -n 2", { stdin: endless(), timeoutMs: 10_000 });
    expect(result).toMatchObject({ stdout: "line 0\nline 1\n", exitCode: 0 });
  });

  it("sends stdin larger than the server's 1 MiB frame limit", async () => {
    const big = "x".repeat(3 * 1024 * 1024 + 5);
    expect((await sandbox.commands.run("wc -c", { stdin: big })).stdout.trim()).toBe(
      String(big.length),
    );
  });

  it("fails with TimeoutError when the command outlives timeoutMs (both paths)", async () => {
    await expect(sandbox.commands.run("sleep 5", { timeoutMs: 300 })).rejects.toBeInstanceOf(
      TimeoutError,
    );
    await expect(
      sandbox.commands.run("sleep 5", { timeoutMs: 300, onStdout: () => {} }),
    ).rejects.toBeInstanceOf(TimeoutError);
  });

  it("fails a streamed run with TimeoutError when the server stops answering", async () => {
    const proxy = await ResettingProxy.start(server.url, 0);
    try {
      const viaProxy = await Sandbox.connect(sandbox.sandboxId, {
        apiUrl: proxy.url,
        apiKey: server.apiKey,
      });
      // Frozen mid-run: the server kills the command at timeoutMs, but its verdict never comes.
      const midRun = viaProxy.commands.run("echo started; sleep 30", {
        tag: "frozen",
        timeoutMs: 500,
        onStdout: () => proxy.freeze(),
      });
      await expect(midRun).rejects.toBeInstanceOf(TimeoutError);
      // Frozen before the run: the stream is never even opened.
      await expect(
        viaProxy.commands.run("true", { timeoutMs: 500, onStdout: () => {} }),
      ).rejects.toBeInstanceOf(TimeoutError);
    } finally {
      await proxy.close();
    }
    expect((await sandbox.commands.list()).some((p) => p.tag === "frozen")).toBe(false);
  });

  it("kills the command when the signal aborts mid-stream", async () => {
    const controller = new AbortController();
    const chunks: string[] = [];
    const running = sandbox.commands.run("echo started; sleep 30", {
      tag: "abortable",
      signal: controller.signal,
      onStdout: (s) => {
        chunks.push(s);
        controller.abort(new Error("changed my mind"));
      },
    });
    await expect(running).rejects.toThrow("changed my mind");
    expect(chunks.join("")).toBe("started\n");
    await eventually(
      async () => !(await sandbox.commands.list()).some((p) => p.tag === "abortable"),
      "the aborted command to be gone",
    );
  });

  it("fails with the error an output callback threw, killing the command", async () => {
    const threw = new Error("a bug in the callback");
    const running = sandbox.commands.run("echo started; sleep 30", {
      tag: "callback-threw",
      onStdout: () => {
        throw threw;
      },
    });
    await expect(running).rejects.toBe(threw);
    await eventually(
      async () => !(await sandbox.commands.list()).some((p) => p.tag === "callback-threw"),
      "the command to be gone",
    );
  });

  it("leaves nothing running when the signal aborts before or while the command starts", async () => {
    // Already aborted: the call fails at once with the signal's reason and starts nothing.
    const early = new Error("aborted before the call");
    await expect(
      sandbox.commands.run("sleep 1; touch /tmp/pre-aborted", { signal: AbortSignal.abort(early) }),
    ).rejects.toBe(early);

    // Aborted the moment the start frame has left, before the server answered it: the server
    // holds the kill until the process is up, even though the stream closes at once.
    const proxy = await ResettingProxy.start(server.url, 0);
    try {
      const viaProxy = await Sandbox.connect(sandbox.sandboxId, {
        apiUrl: proxy.url,
        apiKey: server.apiKey,
      });
      const controller = new AbortController();
      let upgraded = false;
      proxy.onClientData = (chunk) => {
        if (upgraded) controller.abort(new Error("aborted while starting"));
        else upgraded = chunk.toString("latin1").includes("/exec/stream");
      };
      await expect(
        viaProxy.commands.run("sleep 1; touch /tmp/abort-starting", {
          tag: "abort-starting",
          signal: controller.signal,
        }),
      ).rejects.toThrow("aborted while starting");
      await sleep(2_000); // past the command's `sleep 1`, with the proxy still carrying the stream
    } finally {
      await proxy.close();
    }
    expect(await sandbox.files.exists("/tmp/pre-aborted")).toBe(false);
    expect(await sandbox.files.exists("/tmp/abort-starting")).toBe(false);
    expect((await sandbox.commands.list()).some((p) => p.tag === "abort-starting")).toBe(false);
  });
});

describe("background commands", () => {
  it("returns a handle: pid, iteration, stdin, wait", async () => {
    const handle = await sandbox.commands.run("cat; echo done >&2", { background: true });
    expect(handle.pid).toBeGreaterThan(0);
    const chunks: OutputChunk[] = [];
    const iterating = (async () => {
      for await (const chunk of handle) chunks.push(chunk);
    })();
    await handle.sendStdin("one\n");
    await handle.sendStdin(new TextEncoder().encode("two\n"));
    await handle.closeStdin();
    const result = await handle.wait();
    await iterating;
    expect(result).toMatchObject({ stdout: "one\ntwo\n", stderr: "done\n", exitCode: 0 });
    expect(
      chunks
        .filter((c) => c.stream === "stdout")
        .map((c) => c.text())
        .join(""),
    ).toBe("one\ntwo\n");
    expect(handle.stdout).toBe("one\ntwo\n");
  });

  it("keeps the output of a command that ended before iteration began", async () => {
    const handle = await sandbox.commands.run("echo hi; echo oops >&2", { background: true });
    await handle.wait();
    const seen: string[] = [];
    for await (const chunk of handle) seen.push(`${chunk.stream}:${chunk.text()}`);
    expect(seen.sort()).toEqual(["stderr:oops\n", "stdout:hi\n"]);
  });

  it("lists, reattaches by tag after disconnect, writes stdin over REST, and kills", async () => {
    const handle = await sandbox.commands.run("while read line; do echo got $line; done", {
      background: true,
      tag: "echoer",
    });
    const listed = await sandbox.commands.list();
    expect(listed).toContainEqual(expect.objectContaining({ pid: handle.pid, tag: "echoer" }));

    handle.disconnect();
    await expect(handle.wait()).rejects.toMatchObject({ code: "disconnected" });

    let attached: CommandHandle | undefined;
    try {
      attached = await sandbox.commands.connect("echoer");
      expect(attached.pid).toBe(handle.pid);
      await sandbox.commands.sendStdin(handle.pid, "hi\n");
      await eventually(
        () => attached?.stdout === "got hi\n",
        "the echo through the reattached stream",
      );
      await sandbox.commands.sendStdin(handle.pid, new TextEncoder().encode("bytes\n"));
      await eventually(() => attached?.stdout.endsWith("got bytes\n") ?? false, "binary stdin");
      await sandbox.commands.closeStdin(handle.pid);
      await expect(attached.wait()).resolves.toMatchObject({ exitCode: 0 });
    } finally {
      attached?.disconnect();
    }
    expect(await sandbox.commands.kill(handle.pid)).toBe(false);

    const sleeper = await sandbox.commands.run("sleep 30", { background: true });
    expect(await sandbox.commands.kill(sleeper.pid)).toBe(true);
    const ended = await sleeper.wait().catch((e: unknown) => e);
    expect(ended).toBeInstanceOf(CommandExitError);
    expect((ended as CommandExitError).exitCode).not.toBe(0);

    const other = await sandbox.commands.run("sleep 30", { background: true });
    expect(await other.kill()).toBe(true);
    await expect(other.wait()).rejects.toBeInstanceOf(CommandExitError);
  });

  it("reports a missing process and a paused sandbox as typed errors", async () => {
    await expect(sandbox.commands.connect(999_999)).rejects.toMatchObject({ code: "not_found" });
    const paused = await Sandbox.create({ apiUrl: server.url, apiKey: server.apiKey, ...SMALL });
    try {
      await paused.pause();
      await expect(paused.commands.run("true", { onStdout: () => {} })).rejects.toBeInstanceOf(
        SandboxError,
      );
      await expect(paused.commands.run("true")).rejects.toBeInstanceOf(SandboxError);
    } finally {
      await paused.kill();
    }
  });
});

describe("attaching to a server that never answers", () => {
  it("commands.connect fails with TimeoutError after timeoutMs and lets its socket go", async () => {
    // One sandbox id gets its WebSocket accepted and then silence; the other no upgrade at all.
    const accepted = new WebSocketServer({ noServer: true });
    const hanging: Socket[] = [];
    const http = createServer();
    http.on("upgrade", (req, socket: Socket, head) => {
      if (req.url?.includes("/silent/")) accepted.handleUpgrade(req, socket, head, () => {});
      else {
        hanging.push(socket);
        // Reads on, so the client's leaving (its FIN) is seen; the upgrade socket is half-open.
        socket.resume().on("end", () => socket.destroy());
      }
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const { port } = http.address() as { port: number };
    const client = new ApiClient({ apiUrl: `http://127.0.0.1:${port}`, apiKey: "k" });
    try {
      for (const id of ["silent", "never-upgraded"]) {
        const err = await new Commands(client, id)
          .connect(7, { timeoutMs: 300 })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TimeoutError);
      }
      await eventually(
        () => accepted.clients.size === 0 && hanging.length === 1 && hanging.every((s) => s.closed),
        () => `the client to close both sockets (${accepted.clients.size} accepted left)`,
      );
    } finally {
      for (const socket of hanging) socket.destroy();
      for (const ws of accepted.clients) ws.terminate();
      accepted.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });
});

describe("pty", () => {
  it("runs an interactive shell: input, resize, output, exit", async () => {
    const output: Uint8Array[] = [];
    const text = () => Buffer.concat(output).toString("utf8");
    // As root: envd runs PTYs of other users through setpriv, and test-minimal's busybox setpriv
    // lacks --reuid (reported to envd's owner).
    const term = await sandbox.pty.create({
      cols: 80,
      rows: 24,
      user: "root",
      onData: (d) => output.push(d),
    });
    expect(term.pid).toBeGreaterThan(0);
    await term.sendInput("stty size\n");
    await eventually(
      () => text().includes("24 80"),
      () => `the terminal size in ${JSON.stringify(text())}`,
    );
    await term.resize({ cols: 100, rows: 30 });
    await term.sendInput("stty size; echo $TERM\n");
    await eventually(
      () => text().includes("30 100") && text().includes("xterm-256color"),
      "the resize",
    );

    term.disconnect();
    const output2: Uint8Array[] = [];
    const again = await sandbox.pty.connect(term.pid, { onData: (d) => output2.push(d) });
    await again.sendInput("echo back again\n");
    await eventually(
      () => Buffer.concat(output2).toString().includes("back again"),
      "reattached output",
    );
    await again.sendInput("exit 0\n");
    await expect(again.wait()).resolves.toMatchObject({ exitCode: 0 });
    expect(await sandbox.pty.kill(term.pid)).toBe(false);
  });

  it("kills a session", async () => {
    const term = await sandbox.pty.create({
      cols: 40,
      rows: 10,
      user: "root",
      onData: () => {},
      cmd: "sleep 30",
    });
    expect(await sandbox.pty.kill(term.pid)).toBe(true);
    const result = await term.wait();
    expect(result.exitCode).not.toBe(0);
  });
});

describe("error brands", () => {
  it("are WrennErrors", async () => {
    const err = await sandbox.commands.run("exit 1").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WrennError);
  });
});
