import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Sandbox as E2bSandbox } from "@e2b/code-interpreter";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  InvalidArgumentError,
  NotFoundError,
  type OutputMessage,
  Sandbox,
  TimeoutError,
} from "../src/index.js";
import { ResettingProxy } from "./helpers/reset-proxy.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { ensureBuiltinTemplate, mirrorSkipReason } from "./helpers/template-cache.js";

// `runCode` against real `code-interpreter` sandboxes (Debian's Jupyter kernel behind Wrenn's
// service on port 49999), from this SDK and from E2B's `@e2b/code-interpreter` package unchanged.
// One server and one template build (debootstrap + apt from the host's Debian mirror, minutes)
// serve every test here. With WRENN_TEST_TEMPLATE_CACHE=<dir> (as in the examples suite) the
// built template is kept in <dir> and reused by later runs and suites.

const TEMPLATE = "code-interpreter";
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const skip = await mirrorSkipReason("builds the template from a Debian mirror");

describe.skipIf(skip)(
  `code interpreter${skip ? ` (skipped: ${skip})` : ""}`,
  { timeout: 120_000 },
  () => {
    let server: TestServer;
    let conn: { apiUrl: string; apiKey: string };
    let sandbox: Sandbox;
    const saved: Record<string, string | undefined> = {};
    const E2B_ENV = ["E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY", "E2B_DOMAIN"];

    beforeAll(async () => {
      server = await startTestServer();
      conn = { apiUrl: server.url, apiKey: server.apiKey };
      const built = await ensureBuiltinTemplate(server, TEMPLATE);
      console.log(`code-interpreter template: ${built.seconds} s, ${built.sizeMiB} MiB`);
      sandbox = await Sandbox.create({ ...conn, template: TEMPLATE, memoryMb: 1024 });
    }, 3_600_000);

    afterAll(async () => {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      await server?.close();
    });

    it("runs code in a sandbox whose ports are not public, created or connected to", async () => {
      const closed = await Sandbox.create({
        ...conn,
        template: TEMPLATE,
        memoryMb: 1024,
        allowPublicTraffic: false,
      });
      try {
        expect((await closed.runCode("6 * 7")).text).toBe("42");
        const again = await Sandbox.connect(closed.sandboxId, conn);
        expect((await again.runCode("6 * 8")).text).toBe("48");
      } finally {
        await closed.kill();
      }
    });

    it("keeps state across calls in a context and counts executions", async () => {
      const first = await sandbox.runCode("x = 1");
      expect(first.error).toBeUndefined();
      expect(first.results).toEqual([]);
      const second = await sandbox.runCode("x + 1");
      expect(second.text).toBe("2");
      expect(second.results[0]?.isMainResult).toBe(true);
      expect(second.executionCount).toBe((first.executionCount ?? 0) + 1);
      const str = await sandbox.runCode("'a' + 'b'");
      expect(str.text).toBe("ab");
    });

    it("reports an exception with its traceback and keeps the context usable", async () => {
      const failed = await sandbox.runCode("def f():\n    return 1 / 0\n\nprint('before')\nf()");
      expect(failed.logs.stdout).toEqual(["before\n"]);
      expect(failed.error).toMatchObject({ name: "ZeroDivisionError", value: "division by zero" });
      expect(failed.error?.traceback).toContain("ZeroDivisionError");
      expect(failed.error?.traceback).toContain("return 1 / 0");
      // Plain text, no terminal colour codes.
      expect(failed.error?.traceback).not.toContain("\u001b[");
      expect((await sandbox.runCode("x")).text).toBe("1");
    });

    it("returns a matplotlib figure as PNG and a DataFrame as HTML and data", async () => {
      const plot = await sandbox.runCode(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [4, 1, 9])\nplt.title('t')\nplt.show()",
      );
      expect(plot.error).toBeUndefined();
      const png = plot.results.find((r) => r.png);
      expect(png?.isMainResult).toBe(false);
      expect(png?.formats()).toContain("png");
      const bytes = Buffer.from(png?.png ?? "", "base64");
      expect(bytes.subarray(0, 8).equals(PNG_MAGIC)).toBe(true);
      expect(bytes.length).toBeGreaterThan(1_000);

      const frame = await sandbox.runCode(
        "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', None]})",
      );
      expect(frame.results[0]?.html).toContain("<table");
      expect(frame.results[0]?.data).toEqual({ a: [1, 2], b: ["x", null] });
    });

    it("streams stdout and stderr to callbacks while the cell runs", async () => {
      const seen: { msg: OutputMessage; at: number }[] = [];
      const errors: string[] = [];
      let ended = 0;
      const execution = await sandbox.runCode(
        "import sys, time\nfor i in range(3):\n    print(f'line{i}', flush=True)\n    time.sleep(0.5)\nprint('oops', file=sys.stderr)",
        {
          onStdout: (msg) => {
            seen.push({ msg, at: Date.now() });
          },
          onStderr: (msg) => {
            errors.push(msg.line);
          },
        },
      );
      ended = Date.now();
      expect(seen.map((s) => s.msg.line).join("")).toBe("line0\nline1\nline2\n");
      expect(seen.length).toBe(3);
      expect(seen.every((s) => !s.msg.error && s.msg.timestamp instanceof Date)).toBe(true);
      // The first line arrived while the cell was still sleeping, not with the end.
      expect(seen[0]?.at).toBeLessThan(ended - 500);
      expect(errors).toEqual(["oops\n"]);
      expect(execution.logs.stderr).toEqual(["oops\n"]);
    });

    it("isolates contexts; lists, restarts and removes them", async () => {
      const ctx = await sandbox.createCodeContext({ cwd: "/tmp" });
      expect(ctx).toMatchObject({ language: "python", cwd: "/tmp" });
      await sandbox.runCode("secret = 42", { context: ctx });
      expect((await sandbox.runCode("secret", { context: ctx })).text).toBe("42");
      expect((await sandbox.runCode("import os; os.getcwd()", { context: ctx })).text).toBe("/tmp");
      const outside = await sandbox.runCode("secret");
      expect(outside.error?.name).toBe("NameError");
      expect((await sandbox.runCode("x", { context: ctx.id })).error?.name).toBe("NameError");

      const listed = await sandbox.listCodeContexts();
      expect(listed.map((c) => c.id)).toContain(ctx.id);
      expect(listed.length).toBeGreaterThanOrEqual(2); // the default one too

      await sandbox.restartCodeContext(ctx);
      expect((await sandbox.runCode("secret", { context: ctx })).error?.name).toBe("NameError");
      await sandbox.removeCodeContext(ctx);
      expect((await sandbox.listCodeContexts()).map((c) => c.id)).not.toContain(ctx.id);
      await expect(sandbox.runCode("1", { context: ctx })).rejects.toBeInstanceOf(NotFoundError);
      await expect(sandbox.removeCodeContext(ctx)).rejects.toBeInstanceOf(NotFoundError);
    });

    it("sets env vars for one cell only", async () => {
      const code = "import os; os.environ.get('WRENN_CELL', 'unset')";
      expect((await sandbox.runCode(code, { envs: { WRENN_CELL: "on" } })).text).toBe("on");
      expect((await sandbox.runCode(code)).text).toBe("unset");
    });

    it("refuses bad input with typed errors", async () => {
      await expect(
        sandbox.runCode("1", { language: "python", context: "x" }),
      ).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(sandbox.runCode("1", { language: "cobol" })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      const raw = await fetch(`${server.url}/execute`, {
        method: "POST",
        headers: { "e2b-sandbox-id": sandbox.sandboxId, "e2b-sandbox-port": "49999" },
        body: "{not json",
      });
      expect(raw.status).toBe(400);
      expect(await raw.json()).toMatchObject({
        code: 400,
        message: expect.stringContaining("JSON"),
      });
    });

    it("times out a long cell and interrupts it, leaving the context usable", async () => {
      await expect(
        sandbox.runCode("import time; time.sleep(60)", { timeoutMs: 2_000 }),
      ).rejects.toBeInstanceOf(TimeoutError);
      // The service notices the caller left within a keepalive (5 s) and interrupts the cell.
      let after = await sandbox.runCode("x", { timeoutMs: 30_000 });
      for (let i = 0; i < 20 && after.error?.name === "ExecutionAborted"; i++) {
        await sleep(200);
        after = await sandbox.runCode("x", { timeoutMs: 30_000 });
      }
      expect(after.text).toBe("1");
    });

    it("closes a cell's request when the caller leaves it early (a callback threw)", async () => {
      const proxy = await ResettingProxy.start(server.url, 0);
      let request: Socket | undefined;
      proxy.onClientData = (chunk, client) => {
        if (chunk.toString("latin1").startsWith("POST /execute")) request = client;
      };
      try {
        const viaProxy = await Sandbox.connect(sandbox.sandboxId, {
          apiUrl: proxy.url,
          apiKey: server.apiKey,
        });
        const threw = new Error("a bug in the callback");
        const run = viaProxy.runCode("print('started', flush=True)\nimport time\ntime.sleep(60)", {
          onStdout: () => {
            throw threw;
          },
        });
        // The callback's own error, not a ConnectionError a retry would act on.
        await expect(run).rejects.toBe(threw);
        const deadline = Date.now() + 5_000;
        while (!request?.closed) {
          if (Date.now() > deadline) throw new Error(`request closed: ${request?.closed}`);
          await sleep(25);
        }
      } finally {
        await proxy.close();
      }
      // The service saw the caller leave and interrupted the cell: the kernel is free again.
      let after = await sandbox.runCode("'free'", { timeoutMs: 30_000 });
      for (let i = 0; i < 20 && after.error?.name === "ExecutionAborted"; i++) {
        await sleep(200);
        after = await sandbox.runCode("'free'", { timeoutMs: 30_000 });
      }
      expect(after.text).toBe("free");
    });

    const js = { language: "js" } as const;

    it("runs JavaScript: state across cells, top-level await, values as text and JSON", async () => {
      const first = await sandbox.runCode("const x = 41", js);
      expect(first.error).toBeUndefined();
      expect(first.results).toEqual([]);
      const second = await sandbox.runCode("x + 1", { language: "javascript" });
      expect(second.text).toBe("42");
      expect(second.results[0]?.isMainResult).toBe(true);
      expect(second.executionCount).toBe((first.executionCount ?? 0) + 1);
      expect((await sandbox.runCode("await Promise.resolve(5)", js)).text).toBe("5");
      const obj = await sandbox.runCode("const o = { a: [1, 2], b: 's' }; o", js);
      expect(obj.text).toBe("{ a: [ 1, 2 ], b: 's' }");
      expect(obj.results[0]?.json).toEqual({ a: [1, 2], b: "s" });
      expect((await sandbox.runCode("'a' + 'b'", js)).text).toBe("ab");
    });

    it("streams JavaScript's console output while the cell runs", async () => {
      const seen: { line: string; at: number }[] = [];
      const execution = await sandbox.runCode(
        "for (let i = 0; i < 3; i++) {\n  console.log('line' + i);\n  await new Promise((r) => setTimeout(r, 500));\n}\nconsole.error('oops')",
        { ...js, onStdout: (msg) => void seen.push({ line: msg.line, at: Date.now() }) },
      );
      const ended = Date.now();
      expect(seen.map((s) => s.line)).toEqual(["line0\n", "line1\n", "line2\n"]);
      expect(seen[0]?.at).toBeLessThan(ended - 500);
      expect(execution.logs.stderr).toEqual(["oops\n"]);
    });

    it("reports a JavaScript exception with its stack and keeps the context usable", async () => {
      const failed = await sandbox.runCode(
        "function f() {\n  throw new TypeError('bad');\n}\nconsole.log('before');\nf();",
        js,
      );
      expect(failed.logs.stdout).toEqual(["before\n"]);
      expect(failed.error).toMatchObject({ name: "TypeError", value: "bad" });
      expect(failed.error?.traceback).toMatch(/^TypeError: bad\n\s+at f \(<cell \d+>:2:9\)/);
      expect((await sandbox.runCode("x", js)).text).toBe("41");
    });

    it("gives JavaScript contexts their cwd, one cell's env vars, the user; restarts them", async () => {
      const ctx = await sandbox.createCodeContext({ language: "js", cwd: "/tmp" });
      expect(ctx).toMatchObject({ language: "javascript", cwd: "/tmp" });
      const run = (code: string, envs?: Record<string, string>) =>
        sandbox.runCode(code, { context: ctx, ...(envs ? { envs } : {}) });
      expect((await run("x")).error?.name).toBe("ReferenceError");
      expect((await run("process.cwd()")).text).toBe("/tmp");
      expect((await run("require('node:os').userInfo().username")).text).toBe("user");
      const env = "process.env.WRENN_CELL ?? 'unset'";
      expect((await run(env, { WRENN_CELL: "on" })).text).toBe("on");
      expect((await run(env)).text).toBe("unset");
      await run("const kept = 1");
      await sandbox.restartCodeContext(ctx);
      expect((await run("typeof kept")).text).toBe("undefined");
      await sandbox.removeCodeContext(ctx);
      await expect(run("1")).rejects.toBeInstanceOf(NotFoundError);
    });

    it("interrupts a busy JavaScript cell on timeout, keeping the context's state", async () => {
      await expect(
        sandbox.runCode("while (true) {}", { ...js, timeoutMs: 2_000 }),
      ).rejects.toBeInstanceOf(TimeoutError);
      // The service notices the caller left within a keepalive (5 s) and sends SIGINT.
      const after = await sandbox.runCode("x", { ...js, timeoutMs: 30_000 });
      expect(after.error).toBeUndefined();
      expect(after.text).toBe("41");
    });

    it("works with E2B's @e2b/code-interpreter package unchanged", async () => {
      for (const name of E2B_ENV) saved[name] = process.env[name];
      process.env.E2B_API_URL = server.url;
      process.env.E2B_SANDBOX_URL = server.url;
      process.env.E2B_API_KEY = server.apiKey;
      delete process.env.E2B_DOMAIN;
      // No template named: the package's default (`code-interpreter-v1`) is Wrenn's built-in.
      const sbx = await E2bSandbox.create({ requestTimeoutMs: 120_000 });
      try {
        await sbx.runCode("x=1");
        const execution = await sbx.runCode("x+1");
        expect(execution.text).toBe("2");
        expect(execution.results[0]?.text).toBe("2");

        const lines: string[] = [];
        const failed = await sbx.runCode("print('hi')\nraise ValueError('bad')", {
          onStdout: (m) => {
            lines.push(m.line);
          },
        });
        expect(lines).toEqual(["hi\n"]);
        expect(failed.error?.name).toBe("ValueError");
        expect(failed.error?.value).toBe("bad");

        const plot = await sbx.runCode(
          "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [1, 2])\nplt.show()",
        );
        const png = Buffer.from(plot.results.find((r) => r.png)?.png ?? "", "base64");
        expect(png.subarray(0, 8).equals(PNG_MAGIC)).toBe(true);

        const js = await sbx.runCode("const y = await Promise.resolve(21); y * 2", {
          language: "js",
        });
        expect(js.text).toBe("42");

        const ctx = await sbx.createCodeContext();
        expect((await sbx.runCode("x", { context: ctx })).error?.name).toBe("NameError");
        expect((await sbx.listCodeContexts()).map((c) => c.id)).toContain(ctx.id);
        await sbx.removeCodeContext(ctx.id);
      } finally {
        await sbx.kill();
      }
    });
  },
);
