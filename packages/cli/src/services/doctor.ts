import { execFile } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { access, open, readdir, readFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  /** The exact command that fixes it, when there is one. */
  fix?: string;
  /** Debian package(s) the fix installs, so the summary can merge them into one apt-get. */
  packages?: string[];
}

/** What each check is for: `namespace` is needed to run sandboxes here; `microvm` only for VMs. */
export interface DoctorReport {
  checks: CheckResult[];
  /** One apt-get line for every missing required package, or undefined. */
  installCommand: string | undefined;
  /** The same for what only microVMs or the `base` template need. */
  optionalInstallCommand: string | undefined;
  ok: boolean;
}

// sbin directories hold several of these and are not on every user's PATH.
const SEARCH = [
  process.env.PATH ?? "",
  "/usr/local/sbin",
  "/usr/sbin",
  "/sbin",
  "/usr/bin",
  "/bin",
].join(delimiter);

function which(bin: string): string | undefined {
  for (const dir of SEARCH.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return join(dir, bin);
    } catch {
      // not here
    }
  }
  return undefined;
}

const apt = (...pkgs: string[]) => `apt-get install -y ${pkgs.join(" ")}`;

function programCheck(
  name: string,
  bins: string[],
  pkg: string,
  required = true,
  why = "",
): CheckResult {
  const found = bins.map(which).filter((p): p is string => p !== undefined);
  if (found.length > 0) return { name, status: "ok", detail: found.join(", ") };
  return {
    name,
    status: required ? "fail" : "warn",
    detail: `${bins.join(" or ")} not found${why ? ` (${why})` : ""}`,
    fix: apt(pkg),
    packages: [pkg],
  };
}

async function version(bin: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout, stderr } = await run(bin, args, { timeout: 5000 });
    return (stdout || stderr).split("\n")[0]?.trim();
  } catch {
    return undefined;
  }
}

async function checkRoot(): Promise<CheckResult> {
  const root = process.getuid?.() === 0;
  return root
    ? { name: "root", status: "ok", detail: "running as root" }
    : {
        name: "root",
        status: "fail",
        detail: "namespaces, mounts, cgroups and loop devices need root",
        fix: "sudo wrenn server start",
      };
}

async function checkBubblewrap(): Promise<CheckResult> {
  const result = programCheck("bubblewrap", ["bwrap"], "bubblewrap");
  if (result.status !== "ok") return result;
  return {
    ...result,
    detail: `${(await version("bwrap", ["--version"])) ?? "bwrap"} (${result.detail})`,
  };
}

const NAMESPACES = ["mnt", "uts", "ipc", "net", "pid"] as const;

/** The namespaces every sandbox gets, tried for real (as root) by unsharing them all once. */
async function checkNamespaces(): Promise<CheckResult> {
  const name = "namespaces";
  const listed = await Promise.all(
    NAMESPACES.map((ns) =>
      access(`/proc/self/ns/${ns}`).then(
        () => undefined,
        () => ns,
      ),
    ),
  );
  const absent = listed.filter((ns): ns is (typeof NAMESPACES)[number] => ns !== undefined);
  if (absent.length > 0)
    return {
      name,
      status: "fail",
      detail: `the kernel lacks ${absent.join(", ")} namespaces`,
      fix: "use a kernel built with CONFIG_NAMESPACES (any distribution kernel)",
    };
  if (process.getuid?.() !== 0)
    return { name, status: "ok", detail: `${NAMESPACES.join(", ")} (not tried: needs root)` };
  const unshare = which("unshare");
  if (!unshare)
    return {
      name,
      status: "fail",
      detail: "unshare not found",
      fix: apt("util-linux"),
      packages: ["util-linux"],
    };
  try {
    await run(unshare, ["--mount", "--uts", "--ipc", "--net", "--pid", "--fork", "true"], {
      timeout: 5000,
    });
    return { name, status: "ok", detail: `${NAMESPACES.join(", ")} (unshared for real)` };
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? "").trim();
    return {
      name,
      status: "fail",
      detail: `unshare failed: ${stderr || (err as Error).message}`,
      fix: "run on the host or in a privileged container (namespaces are refused here)",
    };
  }
}

/** Which cgroup hierarchies are mounted, from /proc/self/mountinfo. */
export function cgroupLayout(mountinfo: string): { v2At?: string; v1Controllers: string[] } {
  let v2At: string | undefined;
  const v1Controllers = new Set<string>();
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const mountPoint = left.split(" ")[4];
    const [fsType, , superOptions] = right.split(" ");
    if (fsType === "cgroup2" && mountPoint && (!v2At || mountPoint === "/sys/fs/cgroup"))
      v2At = mountPoint;
    if (fsType === "cgroup")
      for (const opt of (superOptions ?? "").split(","))
        if (["cpu", "memory", "pids", "freezer", "cpuset"].includes(opt)) v1Controllers.add(opt);
  }
  return { ...(v2At ? { v2At } : {}), v1Controllers: [...v1Controllers].sort() };
}

async function checkCgroups(): Promise<CheckResult> {
  const { v2At, v1Controllers } = cgroupLayout(await readFile("/proc/self/mountinfo", "utf8"));
  const v2Controllers = v2At
    ? (await readFile(join(v2At, "cgroup.controllers"), "utf8").catch(() => ""))
        .trim()
        .split(/\s+/)
        .filter(Boolean)
    : [];
  const hasMemory = v1Controllers.includes("memory") || v2Controllers.includes("memory");
  const detail =
    v1Controllers.length > 0
      ? `v1 (${v1Controllers.join(", ")})${v2At ? `, v2 also at ${v2At}` : ""}`
      : v2At
        ? `v2 at ${v2At} (${v2Controllers.join(", ") || "no controllers enabled"})`
        : "no cgroup hierarchy mounted";
  if (hasMemory) return { name: "cgroup version", status: "ok", detail };
  return {
    name: "cgroup version",
    status: "fail",
    detail: `${detail}: the memory controller is needed for sandbox limits`,
    fix: "mount -t cgroup2 none /sys/fs/cgroup  (or boot with cgroup_enable=memory)",
  };
}

async function checkOverlay(): Promise<CheckResult> {
  const filesystems = await readFile("/proc/filesystems", "utf8");
  if (/\toverlay$/m.test(filesystems))
    return { name: "overlayfs", status: "ok", detail: "overlay in /proc/filesystems" };
  return {
    name: "overlayfs",
    status: "fail",
    detail: "the overlay filesystem is not loaded",
    fix: "modprobe overlay",
  };
}

async function checkLoop(): Promise<CheckResult> {
  const losetup = which("losetup");
  const control = await access("/dev/loop-control").then(
    () => true,
    () => false,
  );
  if (!losetup)
    return {
      name: "loop devices",
      status: "fail",
      detail: "losetup not found",
      fix: apt("util-linux"),
      packages: ["util-linux"],
    };
  if (!control)
    return {
      name: "loop devices",
      status: "fail",
      detail: "/dev/loop-control is missing",
      fix: "modprobe loop",
    };
  return { name: "loop devices", status: "ok", detail: "/dev/loop-control, losetup" };
}

async function checkKvm(): Promise<CheckResult> {
  try {
    const handle = await open("/dev/kvm", "r+");
    await handle.close();
    return { name: "KVM", status: "ok", detail: "/dev/kvm opens read-write" };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      name: "KVM",
      status: "warn",
      detail: `${code === "ENOENT" ? "/dev/kvm does not exist" : `/dev/kvm not usable (${code})`}; microVMs would run on slow TCG emulation`,
      fix: "enable virtualization (VT-x/AMD-V, or nested virtualization), then: modprobe kvm_intel || modprobe kvm_amd",
    };
  }
}

/**
 * Whether the microvm runtime can run here, and how: QEMU started with KVM (tried, not
 * guessed from /dev/kvm) or TCG, plus the guest kernel and the tools its images need.
 */
async function checkMicroVm(): Promise<CheckResult> {
  const missing = [
    !which("qemu-system-x86_64") && "qemu-system-x86",
    !which("qemu-img") && "qemu-utils",
    !which("tini-static") && "tini",
    !which("cpio") && "cpio",
  ].filter((p): p is string => typeof p === "string");
  const boot = await readdir("/boot").catch(() => [] as string[]);
  const kernel = boot
    .filter((f) => /^vmlinuz-.*-cloud-amd64$/.test(f))
    .sort()
    .at(-1);
  if (!kernel) missing.push("linux-image-cloud-amd64");
  if (missing.length > 0) {
    return {
      name: "microvm runtime",
      status: "warn",
      detail: `unavailable: ${missing.join(", ")} not installed`,
      fix: apt(...missing),
      packages: missing,
    };
  }
  const { detectAccel } = await import("@wrenn/agent");
  const accel = await detectAccel(`/boot/${kernel}`);
  const brokenKvm = accel === "tcg" && existsSync("/dev/kvm");
  return {
    name: "microvm runtime",
    status: "ok",
    detail:
      accel === "kvm"
        ? `works with KVM (${kernel})`
        : `works with TCG software emulation (${kernel}${brokenKvm ? "; /dev/kvm is here but a guest kernel does not boot under it" : ""}): boots take seconds, creates restore a snapshot`,
  };
}

async function checkNode(): Promise<CheckResult> {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  const ok = major > 20 || (major === 20 && minor >= 19);
  return ok
    ? { name: "node", status: "ok", detail: `v${process.versions.node}` }
    : {
        name: "node",
        status: "fail",
        detail: `v${process.versions.node}; Wrenn needs >= 20.19`,
        fix: "install Node.js 20.19 or newer",
      };
}

/** Everything the namespace runtime needs (fail) and what microVMs or `base` would need (warn). */
export async function runDoctor(): Promise<DoctorReport> {
  const checks = await Promise.all([
    checkRoot(),
    checkNode(),
    checkBubblewrap(),
    checkNamespaces(),
    checkCgroups(),
    checkOverlay(),
    checkLoop(),
    Promise.resolve(programCheck("nftables or iptables", ["nft", "iptables"], "nftables")),
    Promise.resolve(programCheck("iproute2", ["ip"], "iproute2")),
    Promise.resolve(programCheck("e2fsprogs", ["mkfs.ext4"], "e2fsprogs")),
    Promise.resolve(programCheck("util-linux", ["setpriv", "nsenter"], "util-linux")),
    Promise.resolve(
      programCheck(
        "debootstrap",
        ["debootstrap"],
        "debootstrap",
        false,
        "needed to build the `base` template",
      ),
    ),
    checkKvm(),
    Promise.resolve(
      programCheck(
        "qemu",
        ["qemu-system-x86_64"],
        "qemu-system-x86",
        false,
        "needed by the microvm runtime",
      ),
    ),
    checkMicroVm(),
  ]);
  const packagesOf = (status: CheckStatus) => [
    ...new Set(checks.flatMap((c) => (c.status === status ? (c.packages ?? []) : []))),
  ];
  const [required, optional] = [packagesOf("fail"), packagesOf("warn")];
  return {
    checks,
    installCommand: required.length > 0 ? apt(...required) : undefined,
    optionalInstallCommand: optional.length > 0 ? apt(...optional) : undefined,
    ok: checks.every((c) => c.status !== "fail"),
  };
}

const MARK = { ok: "✓", warn: "!", fail: "✗" } as const;

/** One line per check (`✓ namespaces  mnt, uts, …`), with its fix under anything not ok. */
export function checkLines(report: DoctorReport, withFixes = true): string[] {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  return report.checks.flatMap((check) => [
    `${MARK[check.status]} ${check.name.padEnd(width)}  ${check.detail}`,
    ...(withFixes && check.fix && check.status !== "ok"
      ? [`  ${" ".repeat(width)}  fix: ${check.fix}`]
      : []),
  ]);
}
