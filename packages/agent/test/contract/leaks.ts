import { readdir, readFile, readlink } from "node:fs/promises";
import { detectCgroupLayout } from "../../src/cgroup/index.js";
import { hostIfName, netnsName } from "../../src/network/index.js";
import { listLoopDevices, mountsUnder } from "../../src/storage/index.js";

/**
 * Everything of the given sandboxes (and of the state dir) still on the host: netns, veths,
 * cgroups, loop devices and mounts under `dir`, and processes whose command line names `dir`
 * (bwrap binds the sandbox root from there). Scoped to what one test file made, so other
 * suites running on the same machine do not show up.
 */
export async function findLeaks(dir: string, ids: Iterable<string>): Promise<string[]> {
  const leaks: string[] = [];
  const idList = [...ids];
  const netns = new Set(await readdir("/run/netns").catch(() => [] as string[]));
  const links = new Set(await readdir("/sys/class/net").catch(() => [] as string[]));
  const layout = await detectCgroupLayout();
  const cgroupParents =
    layout.version === 1
      ? [...new Set(Object.values(layout.mounts))].map((m) => `${m}/${layout.parent}`)
      : [`${layout.root}/${layout.parent}`];
  const cgroups = new Set<string>();
  for (const parent of cgroupParents) {
    for (const name of await readdir(parent).catch(() => [] as string[])) cgroups.add(name);
  }
  for (const id of idList) {
    if (netns.has(netnsName(id))) leaks.push(`netns ${netnsName(id)}`);
    if (links.has(hostIfName(id))) leaks.push(`link ${hostIfName(id)} (${id})`);
    if (cgroups.has(id)) leaks.push(`cgroup ${id}`);
  }
  for (const point of await mountsUnder(dir)) leaks.push(`mount ${point}`);
  for (const loop of await listLoopDevices()) {
    if (loop.backingFile.startsWith(`${dir}/`))
      leaks.push(`loop ${loop.device} → ${loop.backingFile}`);
  }
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(`${dir}/`)) {
      const exe = await readlink(`/proc/${pid}/exe`).catch(() => "?");
      leaks.push(`process ${pid} ${exe}: ${cmdline.replaceAll("\0", " ").slice(0, 120)}`);
    }
  }
  return leaks;
}
