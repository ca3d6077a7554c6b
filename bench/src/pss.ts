import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Proportional set size of every process in a sandbox's cgroup (its init and envd, and anything
 * else it runs), from /proc/<pid>/smaps_rollup: shared pages (Node's code) count by share.
 */
export async function sandboxPss(agentDir: string, id: string): Promise<number> {
  let resourceId = "";
  for (const rid of await readdir(join(agentDir, "sandboxes"))) {
    const raw = await readFile(join(agentDir, "sandboxes", rid, "sandbox.json"), "utf8");
    if (JSON.parse(raw).id === id) resourceId = rid;
  }
  let pss = 0;
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cgroups = await readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => "");
    if (!cgroups.split("\n").some((l) => l.endsWith(`/wrenn/${resourceId}`))) continue;
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
    pss += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0) * 1024;
  }
  return pss;
}
