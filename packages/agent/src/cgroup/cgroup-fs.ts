import { readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { AgentError } from "../errors.js";

/** How long freeze, kill and remove wait for the kernel before giving up. */
export const SETTLE_TIMEOUT_MS = 10_000;
const POLL_MS = 2;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** A cgroup file's trimmed text, or null if the file does not exist (controller not there). */
export async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch (err) {
    if (errno(err) === "ENOENT") return null;
    throw err;
  }
}

/** A number, or null for a missing file or for `max` / v1's near-2^63 "unlimited". */
export async function readNumber(path: string): Promise<number | null> {
  const text = await readText(path);
  if (text === null || text === "max") return null;
  const value = Number(text);
  return value >= 2 ** 62 ? null : value;
}

/** `key value` lines (cpu.stat, memory.events, cgroup.events, v1 memory.oom_control). */
export async function readKeyed(path: string, key: string): Promise<number | null> {
  const text = await readText(path);
  const line = text?.split("\n").find((l) => l.startsWith(`${key} `));
  return line === undefined ? null : Number(line.slice(key.length + 1));
}

export async function writeValue(path: string, value: string | number): Promise<void> {
  try {
    await writeFile(path, String(value));
  } catch (err) {
    throw new AgentError("internal", `write ${value} to ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export async function readPids(procsFile: string): Promise<number[]> {
  const text = await readText(procsFile);
  return text ? text.split("\n").map(Number) : [];
}

/** Polls `done` until it holds; throws `unavailable` after SETTLE_TIMEOUT_MS. */
export async function waitUntil(what: string, done: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  while (!(await done())) {
    if (performance.now() > deadline) {
      throw new AgentError("unavailable", `timed out waiting until ${what}`);
    }
    await sleep(POLL_MS);
  }
}

export function killPids(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch (err) {
      if (errno(err) !== "ESRCH") throw err;
    }
  }
}

/** rmdir that tolerates ENOENT and retries EBUSY (tasks still exiting) for a bounded time. */
export async function removeDir(path: string): Promise<void> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    try {
      await rmdir(path);
      return;
    } catch (err) {
      const code = errno(err);
      if (code === "ENOENT") return;
      if (code !== "EBUSY" || performance.now() > deadline) {
        throw new AgentError("internal", `remove cgroup ${path}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      await sleep(POLL_MS);
    }
  }
}

/** Removes a cgroup and any child cgroups under it, deepest first. */
export async function removeTree(path: string): Promise<void> {
  const entries = await readdir(path, { withFileTypes: true }).catch((err: unknown) => {
    if (errno(err) === "ENOENT") return [];
    throw err;
  });
  for (const entry of entries) if (entry.isDirectory()) await removeTree(`${path}/${entry.name}`);
  await removeDir(path);
}

/** The shell prefix of SandboxCgroup.wrapCommand. */
export function wrapInCgroup(procsFiles: readonly string[], argv: readonly string[]): string[] {
  const writes = procsFiles.map((_, i) => `echo $$ > "$${i + 1}"`).join(" && ");
  return [
    "/bin/sh",
    "-c",
    `${writes} && shift ${procsFiles.length} && exec "$@"`,
    "sh",
    ...procsFiles,
    ...argv,
  ];
}
