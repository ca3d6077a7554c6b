import { EnvdError } from "../errors.js";
import { logger } from "../logger.js";
import type { UserInfo } from "../user/index.js";
import { loadPty, ManagedProcess, type StartOptions } from "./managed-process.js";
import { SpawnHelper } from "./spawn-helper.js";
import { planSpawn, validateCommand } from "./spawn-plan.js";
import type { Subscriber } from "./subscriber.js";

/** How a caller names a process: by pid or by tag. */
export type Selector = { pid: number } | { tag: string };

/** Grace between SIGTERM and SIGKILL when envd shuts down. */
const termGraceMs = 3000;

/** The processes envd started that are still running, by pid and by tag. */
export class ProcessManager {
  private readonly byPid = new Map<number, ManagedProcess>();
  private readonly byTag = new Map<string, ManagedProcess>();
  /** Tags of starts under way, not yet in byTag. */
  private readonly startingTags = new Set<string>();
  private closing = false;

  private helper: SpawnHelper | undefined;
  private helperStarted = false;

  /**
   * With a spawn helper (its path), processes with pipes start without a fork of envd (see
   * spawn-helper.ts). It starts with {@link startHelper} or with the first such process.
   */
  constructor(private readonly helperPath?: string) {}

  /**
   * Starts the spawn helper if it is not yet. Starting it costs envd a fork of itself (a few
   * milliseconds): envd does it once it has answered its first request, not before it listens.
   */
  startHelper(): void {
    if (this.helperStarted || this.closing) return;
    this.helperStarted = true;
    this.helper = SpawnHelper.start(this.helperPath, logger);
  }

  /**
   * Starts a process as `user` and attaches a first subscriber before any output can arrive.
   * A command that cannot be started still yields a (pid 0, already ended) process whose end
   * carries the error; a cwd it cannot run in is refused (invalid_argument), as E2B's envd does.
   */
  async start(
    options: StartOptions,
    user: UserInfo,
  ): Promise<{ proc: ManagedProcess; sub: Subscriber }> {
    validateCommand(options.spec);
    const pty = options.pty !== undefined;
    if (pty) await loadPty();
    if (this.closing) throw new EnvdError("failed_precondition", "envd is shutting down");
    this.checkTag(options.tag);
    // Held until the process is tracked: a start through the helper awaits its spawn, and a
    // second start with the tag meanwhile must be refused like one after it.
    if (options.tag !== undefined) this.startingTags.add(options.tag);
    let proc: ManagedProcess;
    try {
      if (!pty) this.startHelper();
      const helper = !pty && this.helper?.available ? this.helper : undefined;
      const planned = planSpawn(options.spec, user, pty, helper !== undefined);
      proc = !planned.ok
        ? ManagedProcess.failed(options, planned.error, "ENOENT")
        : helper
          ? await ManagedProcess.spawnWithHelper(options, planned.plan, helper, () =>
              planSpawn(options.spec, user, false),
            )
          : ManagedProcess.spawn(options, planned.plan);
    } finally {
      if (options.tag !== undefined) this.startingTags.delete(options.tag);
    }
    const sub = proc.subscribe();
    if (!proc.ended && proc.pid) this.track(proc);
    logger.debug(
      { pid: proc.pid, cmd: options.spec.cmd, tag: options.tag, user: user.name, pty: proc.isPty },
      "process started",
    );
    return { proc, sub };
  }

  private checkTag(tag: string | undefined): void {
    if (tag !== undefined && (this.byTag.has(tag) || this.startingTags.has(tag))) {
      throw new EnvdError("already_exists", `a running process already has tag "${tag}"`);
    }
  }

  private track(proc: ManagedProcess): void {
    this.byPid.set(proc.pid, proc);
    if (proc.tag !== undefined) this.byTag.set(proc.tag, proc);
    void proc.done.then((exit) => {
      this.byPid.delete(proc.pid);
      if (proc.tag !== undefined && this.byTag.get(proc.tag) === proc) this.byTag.delete(proc.tag);
      logger.debug({ pid: proc.pid, tag: proc.tag, status: exit.status }, "process ended");
    });
  }

  /** The running process `selector` names; not_found otherwise. */
  select(selector: Selector | undefined): ManagedProcess {
    if (!selector)
      throw new EnvdError("invalid_argument", "process selector (pid or tag) is required");
    const proc = "pid" in selector ? this.byPid.get(selector.pid) : this.byTag.get(selector.tag);
    if (!proc) {
      const what = "pid" in selector ? `pid ${selector.pid}` : `tag "${selector.tag}"`;
      throw new EnvdError("not_found", `no running process with ${what}`);
    }
    return proc;
  }

  list(): ManagedProcess[] {
    return [...this.byPid.values()];
  }

  /** SIGTERM to every process envd started (and its group), SIGKILL to whatever is left after a grace. */
  async close(): Promise<void> {
    this.closing = true;
    await this.endAll();
    this.helper?.close();
  }

  private async endAll(): Promise<void> {
    const running = this.list();
    if (running.length === 0) return;
    for (const proc of running) proc.kill("SIGTERM", true);
    const allDone = Promise.all(running.map((p) => p.done));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), termGraceMs);
    });
    if ((await Promise.race([allDone, graceOver])) === "timeout") {
      for (const proc of running) proc.kill("SIGKILL", true);
      await allDone;
    }
    clearTimeout(timer);
  }
}
