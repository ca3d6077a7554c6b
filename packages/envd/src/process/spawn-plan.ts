import { accessSync, constants as fsConstants, realpathSync, type Stats, statSync } from "node:fs";
import { delimiter, isAbsolute, resolve } from "node:path";
import { defaults } from "../defaults.js";
import { EnvdError } from "../errors.js";
import { searchBlocker } from "../filesystem/access.js";
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
  /** Set when the spawner itself (libuv, node-pty or the spawn helper) switches the user. */
  uid?: number;
  gid?: number;
  /** Supplementary groups, for a spawner that sets them (the spawn helper); with uid and gid. */
  groups?: number[];
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

// The checks below stat synchronously: a handful of stats of local paths take microseconds,
// while each trip through libuv's thread pool costs a wakeup, which a loaded host makes long.
function statOf(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    // ENOTDIR, EACCES, ENAMETOOLONG…: as good as missing here.
    return undefined;
  }
}

function isExecutableFile(path: string): boolean {
  const info = statOf(path);
  return info?.isFile() === true && (info.mode & 0o111) !== 0;
}

/**
 * Why `cmd` cannot be executed (Go's wording, as E2B's envd reports it), or undefined when it can.
 * Checked up front so pipes and PTYs fail the same way.
 */
function commandProblem(cmd: string, path: string, cwd: string): string | undefined {
  if (cmd.includes("/")) {
    const full = isAbsolute(cmd) ? cmd : resolve(cwd, cmd);
    return isExecutableFile(full) ? undefined : `fork/exec ${cmd}: no such file or directory`;
  }
  if (path.split(delimiter).some((dir) => isExecutableFile(resolve(cwd, dir || ".", cmd))))
    return undefined;
  return `exec: "${cmd}": executable file not found in $PATH`;
}

function cwdProblem(cwd: string, user: UserInfo): string | undefined {
  const info = statOf(cwd);
  if (!info) return `cwd '${cwd}' does not exist`;
  if (!info.isDirectory()) return `cwd '${cwd}' is not a directory`;
  if (user.uid === 0) return undefined; // root searches anywhere: no walk to make
  // As chdir(2) as the user would: E2B's envd refuses such a cwd as a wrong argument too.
  let blocked: string | undefined;
  try {
    blocked = searchBlocker(user, realpathSync(cwd));
  } catch {
    return `cwd '${cwd}' does not exist`; // removed meanwhile
  }
  return blocked === undefined ? undefined : `cwd '${cwd}': permission denied`;
}

/** Where to run and, if the process cannot run there, why. Each candidate is checked once. */
function chooseCwd(spec: CommandSpec, user: UserInfo): { cwd: string; problem?: string } {
  const asked = spec.cwd ? resolve(user.home, spec.cwd) : defaults.workdir;
  if (asked) return { cwd: asked, problem: cwdProblem(asked, user) };
  // No cwd asked for: home, or / for a user whose home is missing or closed.
  return cwdProblem(user.home, user) ? { cwd: "/" } : { cwd: user.home };
}

export type PlanResult = { ok: true; plan: SpawnPlan } | { ok: false; error: string };

/**
 * Works out how to run `spec` as `user`: a clean environment (PATH, HOME, USER, LOGNAME, SHELL,
 * TERM for a PTY) overlaid with /init's env vars and the request's; the user's uid, gid and
 * supplementary groups. libuv drops supplementary groups and node-pty keeps envd's own, so when
 * that would be wrong the command runs through `setpriv` (which execs, keeping the pid). A
 * spawner that sets the groups itself (`setsGroups`: the spawn helper) gets them in the plan
 * instead: the same groups setpriv or libuv would leave, without the extra exec. Throws
 * invalid_argument for a cwd that is missing, not a directory, or closed to the user.
 */
export function planSpawn(
  spec: CommandSpec,
  user: UserInfo,
  pty: boolean,
  setsGroups = false,
): PlanResult {
  const { cwd, problem: badCwd } = chooseCwd(spec, user);
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
  // As E2B's envd: a cwd the process cannot run in refuses the start itself (no process, no end).
  if (badCwd) throw new EnvdError("invalid_argument", badCwd);
  const problem = commandProblem(spec.cmd, env.PATH ?? "", cwd);
  if (problem) return { ok: false, error: problem };

  const self = process.getuid?.() === user.uid && process.getgid?.() === user.gid;
  if (self) return { ok: true, plan: { file: spec.cmd, args: spec.args, cwd, env } };
  const extraGroups = user.groups.some((g) => g !== user.gid);
  if (setsGroups) {
    const groups = extraGroups ? user.groups : [];
    return {
      ok: true,
      plan: { file: spec.cmd, args: spec.args, cwd, env, uid: user.uid, gid: user.gid, groups },
    };
  }
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
