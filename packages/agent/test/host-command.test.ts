import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CommandError, runCommand, runCommands } from "../src/host/index.js";

/** The parent of the process that ran `sh -c 'echo $PPID'`: who started host commands. */
async function commandParent(): Promise<number> {
  const { stdout } = await runCommand("/bin/sh", ["-c", "echo $PPID"]);
  return Number(stdout.trim());
}

function processName(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
}

describe("host commands", () => {
  it("start from envd's spawn helper, not from a fork of the agent", async () => {
    const parent = await commandParent();
    expect(parent).not.toBe(process.pid);
    expect(processName(parent)).toBe("wrenn-spawn");
    // Every command: the helper is started once.
    expect(await commandParent()).toBe(parent);
  });

  it("take stdin, give stdout and stderr, and fail with the exit code and stderr", async () => {
    expect((await runCommand("cat", [], { input: "through stdin\n" })).stdout).toBe(
      "through stdin\n",
    );
    const both = await runCommand("/bin/sh", ["-c", "echo out; echo err >&2"]);
    expect(both).toEqual({ stdout: "out\n", stderr: "err\n" });
    const failed = await runCommand("/bin/sh", ["-c", "echo why >&2; exit 3"]).catch((e) => e);
    expect(failed).toBeInstanceOf(CommandError);
    expect(failed).toMatchObject({ exitCode: 3, stderr: "why\n" });
    const chained = await runCommands([
      { file: "cat", args: [], input: "one" },
      { file: "cat", args: [], input: "two" },
    ]);
    expect(chained.stdout).toBe("onetwo");
  });

  it("say when a tool is missing, and kill one that outlives its timeout", async () => {
    const missing = await runCommand("wrenn-no-such-tool", ["x"]).catch((e) => e);
    expect(missing).toBeInstanceOf(CommandError);
    expect(missing.message).toMatch(/ENOENT/);
    // Ended by a signal (no exit code): left alone, sleep would exit 0 after 30 s.
    const slow = await runCommand("sleep", ["30"], { timeoutMs: 200 }).catch((e) => e);
    expect(slow).toBeInstanceOf(CommandError);
    expect(slow.exitCode).toBeNull();
  });

  it("fall back to Node's spawn when the helper is gone", async () => {
    const helper = await commandParent();
    expect(processName(helper)).toBe("wrenn-spawn");
    // The helper is this test process's own child.
    process.kill(helper, "SIGKILL");
    await expect.poll(() => commandParent(), { timeout: 10_000 }).toBe(process.pid);
    expect((await runCommand("cat", [], { input: "still works" })).stdout).toBe("still works");
  });
});
