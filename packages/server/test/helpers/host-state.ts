import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import { removeHostFirewall } from "@wrenn/agent";

const run = promisify(execFile);
const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/**
 * The agent installs its host firewall and turns on ip_forward once per host. A test file that
 * found neither puts the host back as it was; returns the function that does it.
 */
export async function keepHostState(): Promise<() => Promise<void>> {
  const hadFirewall = await run("nft", ["list", "table", "inet", "wrenn"]).then(
    () => true,
    () => false,
  );
  const ipForward = (await readFile(IP_FORWARD, "utf8")).trim();
  return async () => {
    if (!hadFirewall) await removeHostFirewall();
    if ((await readFile(IP_FORWARD, "utf8")).trim() !== ipForward)
      await writeFile(IP_FORWARD, ipForward);
  };
}

/** Mounts and loop devices still pointing into `dir` (what a destroyed sandbox must not leave). */
export async function leaksUnder(dir: string): Promise<string[]> {
  const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .filter((line) => line.includes(dir));
  const loops = (await run("losetup", ["-a"])).stdout.split("\n").filter((l) => l.includes(dir));
  return [...mounts, ...loops];
}
