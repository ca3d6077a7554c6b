import { CommandExitError, InvalidArgumentError, Sandbox } from "e2b";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type E2bServer,
  startE2bServer,
  E2B_TEST_TEMPLATE as TEMPLATE,
} from "./helpers/e2b-server.js";

// Where E2B's SDK (the `e2b` package, unchanged) sees what E2B's own envd and API give it:
// error messages and classes, and the edge values of its calls. Real sandboxes, as e2b-sdk.test.ts.

const skipReason = process.getuid?.() !== 0 ? "needs root (real sandboxes)" : undefined;

describe.skipIf(skipReason)(
  `E2B's SDK sees E2B's behaviour${skipReason ? ` (skipped: ${skipReason})` : ""}`,
  { timeout: 60_000 },
  () => {
    let server: E2bServer;
    let sbx: Sandbox;

    beforeAll(async () => {
      // This suite's own sandbox range (see e2b-sdk.test.ts: 10.243.0.0/16 .. 10.246.0.0/16).
      server = await startE2bServer("10.244");
      sbx = await Sandbox.create(TEMPLATE);
    });

    afterAll(async () => {
      await server?.close();
    });

    it("says why a command failed: E2B's 'exit status N' in CommandExitError's message", async () => {
      const failed = await sbx.commands.run("echo out; exit 7").catch((err: unknown) => err);
      expect(failed).toBeInstanceOf(CommandExitError);
      const exit = failed as CommandExitError;
      expect([exit.exitCode, exit.error, exit.message, exit.stdout]).toEqual([
        7,
        "exit status 7",
        "exit status 7",
        "out\n",
      ]);
      const ok = await sbx.commands.run("true");
      expect([ok.exitCode, ok.error]).toEqual([0, undefined]);
      // A process ended by a signal: Go's ProcessState.String(), as E2B's envd sends it.
      const killed = await sbx.commands.run("kill -9 $$").catch((err: unknown) => err);
      expect(killed).toBeInstanceOf(CommandExitError);
      expect([(killed as CommandExitError).exitCode, (killed as CommandExitError).error]).toEqual([
        -1,
        "signal: killed",
      ]);
    });

    it("refuses a missing or closed cwd before starting, with InvalidArgumentError as E2B", async () => {
      await sbx.commands.run("mkdir -p -m 700 /srv/closed", { user: "root" });
      for (const [cwd, why] of [
        ["/nope", "cwd '/nope' does not exist"],
        ["/etc/passwd", "cwd '/etc/passwd' is not a directory"],
        // A directory the user may not enter: E2B's envd refuses it the same way.
        ["/srv/closed", "cwd '/srv/closed': permission denied"],
      ]) {
        const err = await sbx.commands.run("pwd", { cwd }).catch((e: unknown) => e);
        expect(err, cwd).toBeInstanceOf(InvalidArgumentError);
        expect((err as Error).message).toContain(why);
      }
      expect((await sbx.commands.list()).filter((p) => p.args.includes("pwd"))).toEqual([]);
      expect((await sbx.commands.run("pwd", { cwd: "/tmp" })).stdout).toBe("/tmp\n");
    });

    it("answers a file where a directory is wanted with InvalidArgumentError, as E2B's envd", async () => {
      await sbx.files.write("/home/user/plain.txt", "x");
      for (const call of [
        () => sbx.files.list("/home/user/plain.txt"),
        () => sbx.files.makeDir("/home/user/plain.txt"),
        () => sbx.files.watchDir("/home/user/plain.txt", () => {}),
      ]) {
        const err = await call().catch((e: unknown) => e);
        expect(err, String(call)).toBeInstanceOf(InvalidArgumentError);
        expect((err as Error).message).toMatch(/not a directory/);
      }
      expect(await sbx.files.makeDir("/home/user")).toBe(false);
    });

    it("setTimeout(0) ends the sandbox's time now, as E2B's API: Wrenn's timeout pauses it", async () => {
      const other = await Sandbox.create(TEMPLATE);
      await other.setTimeout(0);
      expect((await other.getInfo()).state).toBe("paused");
      await Sandbox.setTimeout(other.sandboxId, 0);
      expect((await Sandbox.getInfo(other.sandboxId)).state).toBe("paused");
      // As after any timeout: connect resumes it.
      const again = await Sandbox.connect(other.sandboxId);
      expect((await again.commands.run("echo back")).stdout).toBe("back\n");
      await again.kill();
    });

    it("writes, reads and lists files whose names hold %, + and non-ASCII characters", async () => {
      const dir = "/home/user/odd names";
      const names = ["100%41 ü☃.txt", "a+b=c&d#e?.txt", "%2F%E2%98%83.txt", "日本語 😀.md"];
      // One file (octet-stream, the path in the query) and several (multipart, each path in its
      // part's filename).
      await sbx.files.write(`${dir}/${names[0]}`, `content of ${names[0]}`, {
        useOctetStream: true,
      });
      await sbx.files.write(
        names.slice(1).map((name) => ({ path: `${dir}/${name}`, data: `content of ${name}` })),
      );
      for (const name of names) {
        expect(await sbx.files.read(`${dir}/${name}`)).toBe(`content of ${name}`);
        expect(await sbx.files.exists(`${dir}/${name}`)).toBe(true);
      }
      const listed = (await sbx.files.list(dir)).map((e) => e.name).sort();
      expect(listed).toEqual([...names].sort());
      // The names on disk are the bytes asked for (a shell glob prints them raw, in byte order).
      const shell = await sbx.commands.run(`cd '${dir}' && LC_ALL=C && printf '%s\\n' *`);
      expect(shell.stdout).toBe(
        `${[...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).join("\n")}\n`,
      );
    });
  },
);
