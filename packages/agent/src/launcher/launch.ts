import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { PipeChild } from "@wrenn/envd";
import { AgentError } from "../errors.js";
import { startHostCommand } from "../host/spawner.js";
import { childPids, readProcStat } from "./proc.js";
import { seccompFilterBytes } from "./seccomp.js";

/** Where envd's directory is mounted inside every sandbox (read-only). */
export const ENVD_MOUNT_DIR = "/opt/wrenn/envd";

/** envd is the sandbox's first process; every template puts Node at /usr/bin/node. */
export const ENVD_COMMAND: readonly string[] = ["/usr/bin/node", `${ENVD_MOUNT_DIR}/envd.js`];

/**
 * What envd keeps as root inside the sandbox: enough to start processes as other users
 * (setuid/setgid, and chown/fowner/dac_override for their files and PTYs) and to signal them.
 * Processes it starts as `user` lose all of them on the uid change (CapEff = 0).
 */
export const SANDBOX_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
];

const SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * oom_score_adj every sandbox process starts with: when the host runs out of memory, the kernel
 * kills sandbox processes before the agent and other host daemons (adj 0). Inside, without
 * CAP_SYS_RESOURCE, nothing can go below 0, so a sandbox never ranks under the host's daemons.
 * Within a sandbox's memory cgroup all processes start equal; envd raising the processes it
 * starts (to 1000) makes the kernel pick them rather than envd when the sandbox is out of memory.
 */
export const SANDBOX_OOM_SCORE_ADJ = 200;

// Runs as the sandbox's future first process: joins the cgroups by writing its own pid, sets
// its OOM score, then execs (same pid) setpriv twice (bounding set), nsenter (netns) and bwrap.
// So nothing of the sandbox ever runs outside its cgroup. First it lays out bwrap's descriptors
// from what it was started with: the seccomp program (a file) on 3, its stdin (the environment,
// a pipe) on 4, its stdout (the agent's ready pipe) on 5; its own stdio then go to the log.
// $1 = log file, $2 = seccomp program, $3 = number of cgroup.procs files, the files, then argv.
const JOIN_CGROUPS_AND_EXEC = `exec 3<"$2" 4<&0 5>&1 </dev/null >>"$1" 2>&1 || exit 125
shift 2
echo ${SANDBOX_OOM_SCORE_ADJ} > /proc/self/oom_score_adj ||
  { echo "wrenn-launch: cannot set oom_score_adj" >&2; exit 125; }
n=$1; shift
while [ "$n" -gt 0 ]; do
  echo $$ > "$1" || { echo "wrenn-launch: cannot join cgroup $1" >&2; exit 125; }
  shift; n=$((n - 1))
done
exec "$@"`;

export interface LaunchSandboxOptions {
  sandboxId: string;
  /** The merged root (overlayfs) bound as the sandbox's `/`. */
  rootfsDir: string;
  /** A prepared network namespace, e.g. /run/netns/wrenn-<id>. */
  netnsPath: string;
  /** cgroup.procs files (one per hierarchy on cgroup v1) the first process is written to. */
  cgroupProcsFiles: readonly string[];
  /** Host directory holding envd.js (and its native modules), mounted read-only. */
  envdDir: string;
  hostname: string;
  /** Environment of the first process (on top of PATH and HOME). */
  envs?: Readonly<Record<string, string>>;
  /** Set after `envs`, so they cannot be overridden (envd's access token). */
  secretEnvs?: Readonly<Record<string, string>>;
  /** stdout and stderr of the sandbox's first process (appended). */
  logFile: string;
  /**
   * Where the seccomp program is kept for bwrap to read, in a root-only directory of the agent's:
   * written by the first launch of this process that names it, then read by every launch.
   */
  seccompFile: string;
  /** Defaults to ENVD_COMMAND. */
  command?: readonly string[];
}

/** Names the sandbox's outermost process; the start time tells a reused pid from ours. */
export interface SandboxProcess {
  pid: number;
  /** /proc/<pid>/stat field 22 (clock ticks after boot). */
  startTime: number;
}

/** A sandbox just launched: its process, and when its envd says it listens. */
export interface LaunchedSandbox extends SandboxProcess {
  /**
   * Resolves once envd writes to its ready pipe (it listens), or once every end of that pipe in
   * the sandbox is closed (envd exited, or a command that is not envd). Never rejects; it says
   * only "ask now": the answer is envd's /health.
   */
  ready: Promise<void>;
}

/** The environment variable naming the fd envd writes one byte to once it listens. */
const ENVD_READY_FD_ENV = "WRENN_ENVD_READY_FD";

/** `--setenv` arguments, NUL-separated, for bwrap's `--args` fd. */
function envArgs(opts: Pick<LaunchSandboxOptions, "envs" | "secretEnvs">): Buffer {
  const env: Record<string, string> = {
    PATH: SANDBOX_PATH,
    HOME: "/root",
    ...opts.envs,
    // Last: no variable of the caller's can replace them.
    ...opts.secretEnvs,
  };
  const args: string[] = [];
  for (const [key, value] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) || value.includes("\0")) {
      throw new AgentError("invalid_argument", `invalid environment variable: ${key}`);
    }
    args.push("--setenv", key, value);
  }
  return Buffer.from(args.map((a) => `${a}\0`).join(""));
}

/** The bwrap arguments for a sandbox. */
function bwrapArgs(
  opts: Pick<LaunchSandboxOptions, "rootfsDir" | "envdDir" | "hostname" | "command">,
  seccompFd: number,
  envArgsFd: number,
): string[] {
  const args = [
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--bind",
    opts.rootfsDir,
    "/",
    "--proc",
    "/proc",
    // bwrap covers /proc/sys read-only only when it cannot write it: its access(W_OK) test
    // fails on that directory even for root, so as real root it leaves the sysctls writable
    // and the sandbox's root could set host-wide ones (kernel.core_pattern runs a program as
    // host root). The sysctl tree is one per kernel: bind it read-only over the new /proc.
    "--ro-bind",
    "/proc/sys",
    "/proc/sys",
    "--dev",
    "/dev",
    "--ro-bind",
    opts.envdDir,
    ENVD_MOUNT_DIR,
    "--hostname",
    opts.hostname,
    "--new-session",
    "--cap-drop",
    "ALL",
    ...SANDBOX_CAPABILITIES.flatMap((cap) => ["--cap-add", cap]),
    "--clearenv",
    // The environment (secrets among it: envd's access token) comes through a pipe, not argv:
    // bwrap's command line is readable by every user of the host.
    "--args",
    String(envArgsFd),
  ];
  args.push(
    "--chdir",
    "/",
    "--seccomp",
    String(seccompFd),
    "--",
    ...(opts.command ?? ENVD_COMMAND),
  );
  return args;
}

/**
 * Starts a sandbox: bwrap in new PID, mount, IPC, UTS and cgroup namespaces, inside the given
 * netns and cgroups, with capabilities dropped, no_new_privs and the seccomp filter. The process
 * is detached (own session, no tie to the agent) so the sandbox survives an agent restart. It is
 * started like any host command (by the spawn helper when there is one: no fork of the agent),
 * with the descriptors bwrap and envd need made by its first step (JOIN_CGROUPS_AND_EXEC).
 */
export async function launchSandbox(opts: LaunchSandboxOptions): Promise<LaunchedSandbox> {
  const seccompFd = 3;
  const envArgsFd = 4;
  const readyFd = 5;
  const env = envArgs({
    ...opts,
    secretEnvs: { ...opts.secretEnvs, [ENVD_READY_FD_ENV]: String(readyFd) },
  });
  await writeSeccompFile(opts.seccompFile);
  // Made root-only before the launch appends to it.
  closeSync(openSync(opts.logFile, "a", 0o600));
  const argv = [
    "-c",
    JOIN_CGROUPS_AND_EXEC,
    "wrenn-launch",
    opts.logFile,
    opts.seccompFile,
    String(opts.cgroupProcsFiles.length),
    ...opts.cgroupProcsFiles,
    ...(await boundingSetDrop()),
    "nsenter",
    `--net=${opts.netnsPath}`,
    "bwrap",
    ...bwrapArgs(opts, seccompFd, envArgsFd),
  ];
  let child: PipeChild;
  try {
    child = await startHostCommand("/bin/sh", argv, {
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" },
      detached: true,
    });
  } catch (err) {
    throw new AgentError("internal", `sandbox ${opts.sandboxId}: launch failed`, { cause: err });
  }
  const pid = child.pid as number;
  // What the shell says before its stderr goes to the log (it could not open a descriptor).
  const early: Buffer[] = [];
  const stderr = child.stderr as Socket;
  stderr.on("data", (chunk: Buffer) => early.push(chunk));
  stderr.on("error", () => {});
  // bwrap reads its environment from fd 4 until EOF. A launch that failed early cannot read it.
  child.stdin?.on("error", () => {});
  child.stdin?.end(env);
  const ready = readySignal(child.stdout as Socket);

  const stat = await readProcStat(pid);
  if (!stat || stat.state === "Z") {
    // Gone already: its stderr pipe has ended or is about to, so what it said is read whole.
    await Promise.race([new Promise((resolve) => stderr.once("close", resolve)), sleep(1_000)]);
    const log = await readFile(opts.logFile, "utf8").catch(() => "");
    const said = `${Buffer.concat(early).toString()}${log}`.trim();
    throw new AgentError("internal", `sandbox ${opts.sandboxId} exited at launch: ${said}`);
  }
  return { pid, startTime: stat.startTime, ready };
}

/** Each path this process wrote the seccomp program to, and that write. */
const seccompWrites = new Map<string, Promise<void>>();

/**
 * The seccomp program written whole (under another name, then renamed) once per path and
 * process: it is the same for every sandbox, and a launch may be reading the file meanwhile. A
 * file from an earlier agent (perhaps another program) is replaced by this process's first
 * launch; one that went away since (its directory was cleared) is written again.
 */
async function writeSeccompFile(path: string): Promise<void> {
  const written = await seccompWrites.get(path)?.then(
    () => true,
    () => false,
  );
  if (written && existsSync(path)) return;
  const temp = `${path}.${randomBytes(6).toString("hex")}`;
  const write = writeFile(temp, seccompFilterBytes(), { mode: 0o600 })
    .then(() => rename(temp, path))
    // A failed write leaves no half file behind; the next launch tries again.
    .catch(async (err: unknown) => {
      await rm(temp, { force: true });
      throw err;
    });
  seccompWrites.set(path, write);
  await write;
}

/**
 * The first byte on the ready pipe, or its end. The agent's end is closed then (a detached
 * launch's pipes never keep the agent's event loop alive: a sandbox may run for days).
 */
function readySignal(pipe: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      pipe.destroy();
      resolve();
    };
    pipe.once("data", done);
    pipe.once("end", done);
    pipe.once("close", done);
    pipe.once("error", done);
  });
}

/** True while the recorded process runs (a zombie or a reused pid does not count). */
export async function isSandboxAlive(proc: SandboxProcess): Promise<boolean> {
  const stat = await readProcStat(proc.pid);
  return stat !== undefined && stat.startTime === proc.startTime && !isDead(stat.state);
}

/**
 * Kills a sandbox and returns once every process of it is gone; a no-op when it already is.
 * bwrap is stopped first: stopped, it can neither start its PID namespace's init nor reap it,
 * so the children read then are all there is, and an init turning zombie means the kernel has
 * emptied its namespace. If bwrap itself was lost (killed from outside), its init is out of
 * reach from here: the cgroup module's kill is the backstop for that case.
 */
export async function killSandbox(proc: SandboxProcess, timeoutMs = 5_000): Promise<void> {
  if (!(await isSandboxAlive(proc))) return;
  const deadline = Date.now() + timeoutMs;
  signal(proc.pid, "SIGSTOP");
  await waitUntil(deadline, `sandbox process ${proc.pid} did not stop`, async () => {
    const stat = await readProcStat(proc.pid);
    return !stat || stat.state === "T" || isDead(stat.state);
  });
  const inits = await childPids(proc.pid);
  for (const pid of inits) signal(pid, "SIGKILL");
  await waitUntil(deadline, `sandbox ${proc.pid}: namespace did not empty`, async () => {
    const stats = await Promise.all(inits.map(readProcStat));
    return stats.every((stat) => !stat || isDead(stat.state));
  });
  signal(proc.pid, "SIGKILL");
  await waitUntil(
    deadline,
    `sandbox process ${proc.pid} did not die`,
    async () => !(await isSandboxAlive(proc)),
  );
}

async function waitUntil(deadline: number, what: string, done: () => Promise<boolean>) {
  while (!(await done())) {
    if (Date.now() > deadline) throw new AgentError("internal", what);
    await sleep(2);
  }
}

/**
 * bwrap drops the capability bounding set only when it makes a user namespace, so for real root
 * it is done here: two setpriv steps (the kernel refuses inheritable capabilities outside the
 * bounding set, so they are raised first) keep every capability for bwrap itself while the
 * bounding set shrinks to SANDBOX_CAPABILITIES. Nothing in the sandbox can ever regain more.
 */
async function boundingSetDrop(): Promise<string[]> {
  hostCapabilities ??= readFile("/proc/self/status", "utf8").then((status) => {
    const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? "0";
    const mask = BigInt(`0x${hex}`);
    const caps: string[] = [];
    for (let cap = 0n; mask >> cap; cap++) if ((mask >> cap) & 1n) caps.push(`cap_${cap}`);
    return caps;
  });
  const keep = SANDBOX_CAPABILITIES.map((cap) => `+${cap.slice(4).toLowerCase()}`);
  return [
    "setpriv",
    `--inh-caps=-all,${(await hostCapabilities).map((c) => `+${c}`).join(",")}`,
    "setpriv",
    `--bounding-set=-all,${keep.join(",")}`,
  ];
}

let hostCapabilities: Promise<string[]> | undefined;

function isDead(state: string): boolean {
  return state === "Z" || state === "X" || state === "x";
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw AgentError.from(err);
  }
}
