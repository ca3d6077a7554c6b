import { spawn } from "node:child_process";
import type { Socket } from "node:net";
import { HelperUnavailable, type PipeChild, SpawnHelper, spawnHelperPath } from "@wrenn/envd";
import { createLogger } from "../logger/index.js";

// A host command started by Node forks the agent, a Node process of 100+ MiB whose page tables
// the kernel copies: some 1.5 ms of the agent's CPU per command, with its event loop blocked,
// and a create runs about ten of them, a destroy as many. envd's spawn helper (one small
// process, started once) clones with CLONE_VM | CLONE_VFORK instead. Node's spawn remains for
// a host without the helper (no C compiler built it) or after it died.

let helper: SpawnHelper | undefined;
let helperTried = false;

function spawnHelper(): SpawnHelper | undefined {
  if (!helperTried) {
    helperTried = true;
    helper = SpawnHelper.start(spawnHelperPath, createLogger());
  }
  return helper?.available ? helper : undefined;
}

/** The agent's working directory; undefined once it was removed. */
function currentDir(): string | undefined {
  try {
    return process.cwd();
  } catch {
    return undefined;
  }
}

let env: Record<string, string> | undefined;

/**
 * The environment of a host command: the agent's own, as Node's spawn passes it. Copied once:
 * the agent never changes its environment, and each read of process.env is a call into C++.
 */
function agentEnv(): Record<string, string> {
  if (env) return env;
  env = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
  return env;
}

/**
 * Starts a host command with stdout and stderr piped, and stdin too unless `stdin` is false
 * (it reads /dev/null then); resolves once it runs, rejects as Node's spawn does when it cannot
 * (e.g. `spawn nft ENOENT`). It runs in a session of its own when the helper started it, and
 * always when `detached`: a process meant to outlive the agent (a sandbox), whose exit nobody
 * awaits and which never holds the agent's event loop. `env` replaces the agent's own
 * environment.
 */
export async function startHostCommand(
  file: string,
  args: readonly string[],
  options: { env?: Record<string, string>; detached?: boolean; stdin?: boolean } = {},
): Promise<PipeChild> {
  const env = options.env ?? agentEnv();
  const detached = options.detached === true;
  const stdin = options.stdin !== false;
  const fast = spawnHelper();
  // The helper changes into the directory by name; a Node spawn inherits even a removed one.
  const cwd = fast && currentDir();
  if (fast && cwd) {
    try {
      return await fast.spawn({ file, args: [...args], cwd, env, stdin, detached });
    } catch (err) {
      if (!(err instanceof HelperUnavailable)) throw err;
    }
  }
  const child = spawn(file, args, {
    stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"],
    env,
    detached,
  });
  if (detached) {
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as Socket | null)?.unref();
  }
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  return child;
}
