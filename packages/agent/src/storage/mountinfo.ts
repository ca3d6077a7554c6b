import { readFile } from "node:fs/promises";

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) =>
    String.fromCharCode(Number.parseInt(oct, 8)),
  );
}

/** The mounts of the agent's mount namespace, in mount order. */
export async function readMountInfo(): Promise<MountEntry[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(" ");
      const dash = fields.indexOf("-");
      return {
        mountPoint: unescapeMountPath(fields[4] ?? ""),
        fsType: fields[dash + 1] ?? "",
        source: unescapeMountPath(fields[dash + 2] ?? ""),
        superOptions: (fields[dash + 3] ?? "").split(","),
      };
    });
}

/** True when `path` is `dir` or inside it. */
export function isWithin(path: string, dir: string): boolean {
  const base = dir.endsWith("/") ? dir : `${dir}/`;
  return path === dir || path.startsWith(base);
}

/** Mount points at or under `dir`, deepest (last mounted) first: the order to unmount them. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const points = (await readMountInfo()).map((m) => m.mountPoint).filter((p) => isWithin(p, dir));
  return [...new Set(points.reverse())];
}
