import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** Host programs the namespace runtime needs, and the Debian package of each. */
const REQUIRED: readonly { bins: readonly string[]; pkg: string }[] = [
  { bins: ["bwrap"], pkg: "bubblewrap" },
  { bins: ["ip"], pkg: "iproute2" },
  { bins: ["nft", "iptables"], pkg: "nftables" },
  { bins: ["mkfs.ext4"], pkg: "e2fsprogs" },
  { bins: ["losetup", "setpriv", "nsenter"], pkg: "util-linux" },
];
const FOR_BASE = { bins: ["debootstrap"], pkg: "debootstrap" };

export interface PrerequisiteReport {
  /** Programs not found on PATH. */
  missing: string[];
  /** The command that installs them, or undefined when nothing is missing. */
  installCommand: string | undefined;
  /** The namespace runtime needs root (namespaces, mounts, cgroups, loop devices). */
  root: boolean;
}

function onPath(bin: string, path: string): boolean {
  return path.split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The templates the agent builds with debootstrap. */
const DEBOOTSTRAPPED = new Set(["base", "code-interpreter"]);

/** What this host lacks to run sandboxes from `template` (`base` also needs debootstrap). */
export function checkPrerequisites(
  template: string,
  env: NodeJS.ProcessEnv = process.env,
): PrerequisiteReport {
  // sbin directories hold most of these and are not on every user's PATH.
  const path = [env.PATH ?? "", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].join(delimiter);
  const needed = DEBOOTSTRAPPED.has(template) ? [...REQUIRED, FOR_BASE] : REQUIRED;
  const missing: string[] = [];
  const packages = new Set<string>();
  for (const { bins, pkg } of needed) {
    // nft or iptables: either firewall will do.
    const absent =
      pkg === "nftables"
        ? bins.some((b) => onPath(b, path))
          ? []
          : [bins.join(" or ")]
        : bins.filter((b) => !onPath(b, path));
    if (absent.length === 0) continue;
    missing.push(...absent);
    packages.add(pkg);
  }
  return {
    missing,
    installCommand: packages.size > 0 ? `apt-get install -y ${[...packages].join(" ")}` : undefined,
    root: process.getuid?.() === 0,
  };
}
