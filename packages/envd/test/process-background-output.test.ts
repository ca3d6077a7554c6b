import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd } from "./helpers/envd.js";
import { EventReader } from "./helpers/events.js";

/** Both ways envd starts processes with pipes, as in process.test.ts. */
const spawners: [string, Record<string, string>][] = [
  ["the spawn helper", {}],
  ["Node's spawn", { WRENN_ENVD_SPAWN_HELPER: "0" }],
];

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone (its next write to the closed pipe ends it).
  }
}

describe.each(spawners)(
  "a process whose background child goes on writing, started by %s",
  (_spawner, env) => {
    let envd: RunningEnvd;

    beforeAll(async () => {
      envd = await startEnvd(env);
    });
    afterAll(async () => {
      await envd?.stop();
    });

    it("ends soon after the process exits, with its exit status and its own output", async () => {
      const started = Date.now();
      const r = new EventReader(
        envd.process.start(
          {
            process: {
              cmd: "sh",
              args: ["-c", "(while :; do echo tick; sleep 0.05; done) & echo child=$!; exit 3"],
            },
          },
          { signal: AbortSignal.timeout(15_000) },
        ),
      );
      let child = 0;
      try {
        await r.until(() => /child=\d+/.test(r.stdout));
        child = Number(/child=(\d+)/.exec(r.stdout)?.[1]);
        await r.toEnd();
      } finally {
        if (child) kill(child);
      }
      expect(r.end).toMatchObject({ exitCode: 3, exited: true });
      expect(r.stdout).toMatch(/tick\n/);
      expect(Date.now() - started).toBeLessThan(8_000);
      expect((await envd.process.list({})).processes.map((p) => p.pid)).not.toContain(r.pid);
    });
  },
);
