import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { envdDistDir } from "../src/paths.js";
import { basicAuth, type RunningEnvd, startEnvd } from "./helpers/envd.js";
import { EventReader } from "./helpers/events.js";

const helperBinary = join(envdDistDir, "wrenn-spawn");

/** A process's parent pid and command name, from /proc/<pid>/stat. */
function statOf(pid: number): { ppid: number; comm: string } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  return { ppid, comm };
}

/** envd's spawn helper: its child named wrenn-spawn. */
function helperOf(envdPid: number): number | undefined {
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const s = statOf(pid);
      if (s.ppid === envdPid && s.comm === "wrenn-spawn") return pid;
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

async function waitFor(check: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

// The helper is built by `npm run build` with the host's C compiler (CI installs build-essential).
describe.skipIf(!existsSync(helperBinary))(
  "envd's spawn helper (skipped unless npm run build made dist/wrenn-spawn: it needs a C compiler)",
  () => {
    let envd: RunningEnvd;
    const run = (script: string, headers: Record<string, string> = {}) =>
      new EventReader(
        envd.process.start({ process: { cmd: "sh", args: ["-c", script] } }, { headers }),
      );

    /** The helper, once envd's first answer has started it. */
    const startedHelper = async () => {
      const health = await fetch(`${envd.url}/health`);
      expect(health.status).toBeLessThan(300);
      await waitFor(() => helperOf(envd.pid) !== undefined);
      return helperOf(envd.pid)!;
    };

    /** Starts `reader`'s process (`sleep 30` by default), takes its parent, then kills it. */
    const parentOfSleeper = async (reader = run("sleep 30")) => {
      const r = await reader.started();
      const ppid = statOf(r.pid).ppid;
      await envd.process.sendSignal({
        process: { selector: { case: "pid", value: r.pid } },
        signal: 9,
      });
      await r.toEnd();
      return { ppid, end: r.end };
    };

    beforeEach(async () => {
      envd = await startEnvd();
    });
    afterEach(async () => {
      await envd?.stop();
    });

    it("starts once envd has answered its first request, not while envd starts", async () => {
      // Listening, nothing asked yet: envd has not paid for the helper's fork.
      await new Promise((r) => setTimeout(r, 300));
      expect(helperOf(envd.pid)).toBeUndefined();
      const helper = await startedHelper();
      expect((await parentOfSleeper()).ppid).toBe(helper);
    });

    it("starts with the first process when that comes first", async () => {
      const { ppid } = await parentOfSleeper();
      expect(ppid).toBe(helperOf(envd.pid));
    });

    it("starts processes with pipes from the helper, not from envd, and PTYs from envd", async () => {
      const helper = await startedHelper();
      const piped = await parentOfSleeper();
      expect(piped.ppid).toBe(helper);
      expect(piped.end).toMatchObject({ exitCode: -1, exited: false, status: "signal: killed" });

      const pty = new EventReader(
        envd.process.start({
          process: { cmd: "sleep", args: ["30"] },
          pty: { size: { cols: 80, rows: 24 } },
        }),
      );
      expect((await parentOfSleeper(pty)).ppid).toBe(envd.pid);
    });

    it("is out of reach of the sandbox's user: no descriptor of it leaks, its fds cannot be opened", async () => {
      const helper = await startedHelper();
      // Not even what envd's own parent left open (Node's spawn passes those on).
      const fds = await run("ls /proc/$$/fd").toEnd();
      expect(fds.stdout.split("\n").filter(Boolean).sort()).toEqual(["0", "1", "2"]);
      // Its control pipe and the pipes of other processes, as the (default) unprivileged user.
      const probe = await run(
        `for fd in 0 1 3 4 5 6; do cat /proc/${helper}/fd/$fd </dev/null >/dev/null 2>&1 && echo "opened $fd"; done; echo done`,
      ).toEnd();
      expect(probe.stdout).toBe("done\n");
      expect(probe.end?.exitCode).toBe(0);
      // Root in the sandbox is envd's equal: nothing to keep from it, only checked that it works.
      const root = await run("id -u", basicAuth("root")).toEnd();
      expect(root.stdout).toBe("0\n");
    });

    it("falls back to Node's spawn when the helper dies, and ends what it had started", async () => {
      const helper = await startedHelper();
      const running = await run("sleep 1; echo slept").started();
      process.kill(helper, "SIGKILL");
      await waitFor(() => helperOf(envd.pid) === undefined);
      // Its orphan keeps running and streaming; its exit status died with the helper.
      await running.toEnd();
      expect(running.stdout).toBe("slept\n");
      expect(running.end).toMatchObject({ exitCode: -1, exited: true });

      const after = await run("echo $$; echo more >&2; exit 4").toEnd();
      expect(after.stdout).toBe(`${after.pid}\n`);
      expect(after.stderr).toBe("more\n");
      expect(after.end).toMatchObject({ exitCode: 4, exited: true, status: "exit status 4" });
      expect((await parentOfSleeper()).ppid).toBe(envd.pid);
    });

    it("reports a spawn the kernel refuses as envd's not-started end", async () => {
      // Executable for envd (root), not for the user it runs as: execve fails in the child.
      await chmod(envd.dir, 0o755);
      const program = join(envd.dir, "root-only");
      await writeFile(program, "#!/bin/sh\necho ran\n", { mode: 0o700 });
      const r = await new EventReader(envd.process.start({ process: { cmd: program } })).toEnd();
      expect(r.pid).toBe(0);
      expect(r.end).toMatchObject({ exitCode: 126, exited: false, status: "not started" });
      expect(r.end?.error).toBe(`fork/exec ${program}: spawn ${program} EACCES`);
      // …and keeps serving.
      expect((await run("echo ok").toEnd()).stdout).toBe("ok\n");
    });
  },
);
