import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);
/** Mounts and loop devices still pointing into `dir` (what a destroyed sandbox must not leave). */
export async function leaksUnder(dir: string): Promise<string[]> {
  const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .filter((line) => line.includes(dir));
  const loops = (await run("losetup", ["-a"])).stdout.split("\n").filter((l) => l.includes(dir));
  return [...mounts, ...loops];
}
