import { accessSync, constants as fsConstants } from "node:fs";
import { stat } from "node:fs/promises";
import { delimiter, isAbsolute, resolve } from "node:path";
import { defaults } from "../defaults.js";
import { EnvdError } from "../errors.js";
import type { UserInfo } from "../user/index.js";

/** What the process asked for, checked. */
export interface CommandSpec {
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd: string | undefined;
}

/** Everything needed to spawn: the program and argv (maybe wrapped in setpriv), env, cwd, ids. */
export interface SpawnPlan {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Set when the spawner itself (libuv or node-pty) switches the user. */
  uid?: number;
  gid?: number;
}

const basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
export const ptyTerm = "xterm-256color";

function hasNul(value: string): boolean {
  return value.includes("\0");
}

/** Rejects what no process could be started with; throws invalid_argument. */
export function validateCommand(spec: CommandSpec): void {
  if (!spec.cmd) throw new EnvdError("invalid_argument", "process.cmd is empty");
  if (hasNul(spec.cmd) || spec.args.some(hasNul)) {
    throw new EnvdError("invalid_argument", "process.cmd and args must not contain NUL bytes");
  }
  for (const [key, value] of Object.entries(spec.envs)) {
    if (!key || key.includes("=") || hasNul(key) || hasNul(value)) {
      throw new EnvdError(
        "invalid_argument",
        `invalid environment variable name or value: ${JSON.stringify(key)}`,
      );
    }
  }
  if (spec.cwd !== undefined && hasNul(spec.cwd))
    throw new EnvdError("invalid_argument", "cwd must not contain NUL bytes");
}

let setprivPath: string | null | undefined;

/** util-linux's setpriv, if installed: it sets the supplementary groups libuv and node-pty drop or keep. */
function setpriv(): string | null {
  if (setprivPath === undefined) {
    setprivPath = null;
    for (const dir of basePath.split(":")) {
      try {
        accessSync(`${dir}/setpriv`, fsConstants.X_OK);
        setprivPath = `${dir}/setpriv`;
        break;
      } catch {
        // not here
      }
    }
  }
  return setprivPath;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    const info = await stat(path);
    return info.isFile() && (info.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * Why `cmd` cannot be executed (Go's wording, as E2B's envd reports it), or undefined when it can.
 * Checked up front so pipes and PTYs fail the same way.
 */
async function commandProblem(cmd: string, path: string, cwd: string): Promise<string | undefined> {
  if (cmd.includes("/")) {
    const full = isAbsolute(cmd) ? cmd : resolve(cwd, cmd);
    return (await isExecutableFile(full))
      ? undefined
      : `fork/exec ${cmd}: no such file or directory`;
  }
  // All PATH entries at once: only whether one of them has it matters here.
  const found = await Promise.all(
    path.split(delimiter).map((dir) => isExecutableFile(resolve(cwd, dir || ".", cmd))),
  );
  if (found.includes(true)) return undefined;
  return `exec: "${cmd}": executable file not found in $PATH`;
}

async function cwdProblem(cwd: string): Promise<string | undefined> {
  try {
    if (!(await stat(cwd)).isDirectory()) return `chdir ${cwd}: not a directory`;
    return undefined;
  } catch {
    return `chdir ${cwd}: no such file or directory`;
  }
}

async function defaultCwd(user: UserInfo): Promise<string> {
  if (defaults.workdir) return defaults.workdir;
  return (await cwdProblem(user.home)) ? "/" : user.home;
}

export type PlanResult = { ok: true; plan: SpawnPlan } | { ok: false; error: string };

/**
 * Works out how to run `spec` as `user`: a clean environment (PATH, HOME, USER, LOGNAME, SHELL,
 * TERM for a PTY) overlaid with /init's env vars and the request's; the user's uid, gid and
 * supplementary groups. libuv drops supplementary groups and node-pty keeps envd's own, so when
 * that would be wrong the command runs through `setpriv` (which execs, keeping the pid).
 */
export async function planSpawn(
  spec: CommandSpec,
  user: UserInfo,
  pty: boolean,
): Promise<PlanResult> {
  const cwd = spec.cwd ? resolve(user.home, spec.cwd) : await defaultCwd(user);
  const env: Record<string, string> = {
    PATH: basePath,
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: user.shell,
    ...(pty ? { TERM: ptyTerm } : {}),
    ...defaults.envVars,
    ...spec.envs,
  };
  const [badCwd, badCmd] = await Promise.all([
    cwdProblem(cwd),
    commandProblem(spec.cmd, env.PATH ?? "", cwd),
  ]);
  const problem = badCwd ?? badCmd;
  if (problem) return { ok: false, error: problem };

  const self = process.getuid?.() === user.uid && process.getgid?.() === user.gid;
  if (self) return { ok: true, plan: { file: spec.cmd, args: spec.args, cwd, env } };
  const extraGroups = user.groups.some((g) => g !== user.gid);
  const wrapper = (pty || extraGroups) && setpriv();
  if (wrapper) {
    const groups = user.groups.length ? user.groups : [user.gid];
    const args = [
      `--reuid=${user.uid}`,
      `--regid=${user.gid}`,
      `--groups=${groups.join(",")}`,
      "--",
      spec.cmd,
      ...spec.args,
    ];
    return { ok: true, plan: { file: wrapper, args, cwd, env } };
  }
  return {
    ok: true,
    plan: { file: spec.cmd, args: spec.args, cwd, env, uid: user.uid, gid: user.gid },
  };
}
