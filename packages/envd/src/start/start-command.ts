import { setTimeout as sleep } from "node:timers/promises";
import { defaults } from "../defaults.js";
import { EnvdError } from "../errors.js";
import { logger } from "../logger.js";
import type { ProcessManager } from "../process/manager.js";
import { userFromName } from "../user/index.js";
import { readyProbe } from "./ready-check.js";
import { readStartSpec, readTemplateDefaults, type StartSpec } from "./start-spec.js";

/** Where a sandbox's start command is, as GET /health reports it. */
export type StartState =
  | { phase: "none" }
  | { phase: "starting"; pid: number; readyTimeoutMs: number }
  | { phase: "ready"; pid: number }
  | { phase: "failed"; message: string; output: string; exitCode?: number };

/** The tag the start command runs under in the process list. */
export const START_TAG = "start";
/** The tail of the start command's output kept for a failure report. */
const maxOutputBytes = 16 * 1024;
const pollMs = 100;

/** The last `maxOutputBytes` of what a process printed. */
class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;

  push(data: Uint8Array): void {
    this.chunks.push(Buffer.from(data));
    this.size += data.byteLength;
    while (this.size - (this.chunks[0]?.byteLength ?? 0) >= maxOutputBytes) {
      this.size -= this.chunks.shift()?.byteLength ?? 0;
    }
  }

  toString(): string {
    return Buffer.concat(this.chunks).subarray(-maxOutputBytes).toString("utf8");
  }
}

/**
 * Applies the template's defaults (`defaults.json`) and starts its start command (`start.json`)
 * from `configDir` (`/etc/wrenn` in a sandbox). The returned getter says where the start command
 * is; envd's /health answers ready only once it is ready.
 */
export function launchStartCommand(configDir: string, manager: ProcessManager): () => StartState {
  let state: StartState = { phase: "none" };
  let spec: StartSpec | undefined;
  try {
    const templateDefaults = readTemplateDefaults(configDir);
    if (templateDefaults?.user) defaults.user = templateDefaults.user;
    if (templateDefaults?.workdir) defaults.workdir = templateDefaults.workdir;
    if (templateDefaults?.envs)
      defaults.envVars = { ...templateDefaults.envs, ...defaults.envVars };
    spec = readStartSpec(configDir);
  } catch (err) {
    state = { phase: "failed", message: EnvdError.from(err).message, output: "" };
  }
  if (spec) {
    state = { phase: "starting", pid: 0, readyTimeoutMs: spec.readyTimeoutMs };
    void run(spec, manager, (next) => {
      state = next;
    });
  }
  if (state.phase === "failed") logger.error({ message: state.message }, "template config");
  return () => state;
}

async function run(
  spec: StartSpec,
  manager: ProcessManager,
  setState: (state: StartState) => void,
): Promise<void> {
  const fail = (message: string, output: string, exitCode?: number) => {
    logger.error({ message, exitCode }, "start command failed");
    setState({ phase: "failed", message, output, ...(exitCode === undefined ? {} : { exitCode }) });
  };
  const deadline = Date.now() + spec.readyTimeoutMs;
  const tail = new OutputTail();
  try {
    const user = await userFromName(spec.user ?? defaults.user);
    const envs = { ...defaults.envVars, ...spec.envs };
    const cwd = spec.cwd ?? defaults.workdir;
    const { proc, sub } = await manager.start(
      {
        spec: { cmd: "/bin/sh", args: ["-c", spec.cmd], envs, cwd },
        tag: START_TAG,
        pty: undefined,
        stdin: false,
      },
      user,
    );
    if (proc.ended) {
      const exit = await proc.done;
      fail(`start command could not start: ${exit.error ?? exit.status}`, "", exit.exitCode);
      return;
    }
    setState({ phase: "starting", pid: proc.pid, readyTimeoutMs: spec.readyTimeoutMs });
    // Keep its output (for a failure report) until it is ready; then let it run unattended.
    const drained = new AbortController();
    const draining = (async () => {
      for (;;) {
        const item = await sub.next(60_000, drained.signal);
        if (item.type === "data") tail.push(item.chunk.data);
        else if (item.type !== "idle") return;
      }
    })();
    let ended: { exitCode: number; status: string } | undefined;
    void proc.done.then((exit) => {
      ended = exit;
    });
    const probe = spec.ready ? readyProbe(spec.ready, manager, user, envs, cwd) : async () => true;
    for (;;) {
      if (ended) {
        await draining;
        fail(
          `start command exited before it was ready (${ended.status})`,
          tail.toString(),
          ended.exitCode,
        );
        return;
      }
      if (await probe()) break;
      if (Date.now() > deadline) {
        proc.kill("SIGKILL", true);
        drained.abort();
        fail(`start command not ready within ${spec.readyTimeoutMs} ms`, tail.toString());
        return;
      }
      await sleep(pollMs);
    }
    drained.abort();
    proc.unsubscribe(sub);
    logger.info({ pid: proc.pid, cmd: spec.cmd }, "start command ready");
    setState({ phase: "ready", pid: proc.pid });
  } catch (err) {
    fail(`start command: ${EnvdError.from(err).message}`, tail.toString());
  }
}
