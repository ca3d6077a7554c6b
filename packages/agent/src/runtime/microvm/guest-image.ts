import { existsSync } from "node:fs";
import {
  copyFile,
  cp,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { AgentError } from "../../errors.js";
import { runCommand } from "../../host/index.js";
import { copyInto, sharedLibraries } from "../../template/index.js";
import { GUEST_DIR, initScript, START_SCRIPT } from "./guest-files.js";
import { qemuVersion } from "./qemu.js";

/** The modules the guest needs before its root disk and network exist. */
const GUEST_MODULES = ["virtio_mmio", "virtio_blk", "virtio_net", "qemu_fw_cfg"];
const BUSYBOX = "/bin/busybox";
const TINI = "/usr/bin/tini-static";
const RESIZE2FS = "/sbin/resize2fs";
/** Bumped when the initramfs' contents change, so cached ones are made again. */
const INITRD_LAYOUT = 2;
/** Free space a base image gets beyond its files (MiB). */
const IMAGE_HEADROOM_MB = 256;

export interface GuestKernel {
  version: string;
  kernelPath: string;
  modulesDir: string;
}

/** The newest Debian cloud kernel under /boot, or WRENN_MICROVM_KERNEL's version. */
export async function findKernel(wanted = process.env.WRENN_MICROVM_KERNEL): Promise<GuestKernel> {
  const versions = (await readdir("/boot").catch(() => [] as string[]))
    .filter((f) => f.startsWith("vmlinuz-"))
    .map((f) => f.slice("vmlinuz-".length))
    .filter((v) => (wanted ? v === wanted : v.endsWith("-cloud-amd64")))
    .filter((v) => existsSync(`/lib/modules/${v}/modules.dep`))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const version = versions.at(-1);
  if (!version) {
    throw new AgentError(
      "failed_precondition",
      "no guest kernel: install linux-image-cloud-amd64 (or set WRENN_MICROVM_KERNEL)",
    );
  }
  return { version, kernelPath: `/boot/vmlinuz-${version}`, modulesDir: `/lib/modules/${version}` };
}

/** Why microVMs cannot run here, naming the package to install; undefined when they can. */
export async function microVmUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "needs root (network namespaces, taps)";
  if (!(await qemuVersion())) {
    return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
  }
  const kernel = await findKernel().catch((err: unknown) => AgentError.from(err).message);
  if (typeof kernel === "string") return kernel;
  if (!existsSync(TINI)) return "tini is not installed (apt-get install tini)";
  return undefined;
}

/** Module files (relative to modulesDir) in load order: every dependency before its user. */
export async function moduleLoadOrder(modulesDir: string, wanted: readonly string[]) {
  const deps = new Map<string, string[]>();
  for (const line of (await readFile(join(modulesDir, "modules.dep"), "utf8")).split("\n")) {
    const [mod, rest = ""] = line.split(":");
    if (mod) deps.set(mod, rest.trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map([...deps.keys()].map((path) => [moduleName(path), path]));
  const order: string[] = [];
  const visit = (path: string) => {
    if (order.includes(path)) return;
    // modules.dep lists every dependency, transitively, deepest last.
    for (const dep of [...(deps.get(path) ?? [])].reverse()) visit(dep);
    order.push(path);
  };
  for (const name of wanted) {
    const path = byName.get(name);
    // Built into this kernel: nothing to load.
    if (path) visit(path);
  }
  return order;
}

function moduleName(path: string): string {
  return (path.split("/").at(-1) ?? "").replace(/\.ko(\.[a-z]+)?$/, "").replaceAll("-", "_");
}

/**
 * `<cacheDir>/kernel-<version>/initrd.img`, built once per kernel: static busybox, the virtio
 * modules and /init. Built in a temporary directory and renamed, so a crash leaves no half.
 */
export async function ensureInitramfs(cacheDir: string, kernel: GuestKernel): Promise<string> {
  const dir = join(cacheDir, `kernel-${kernel.version}-${INITRD_LAYOUT}`);
  const image = join(dir, "initrd.img");
  if (existsSync(image)) return image;
  const work = join(cacheDir, `.initrd-${process.pid}-${Date.now()}`);
  try {
    for (const sub of ["bin", "mod", "newroot", "proc", "sys", "dev"]) {
      await mkdir(join(work, "root", sub), { recursive: true });
    }
    await copyFile(BUSYBOX, join(work, "root/bin/busybox"));
    const modules = await moduleLoadOrder(kernel.modulesDir, GUEST_MODULES);
    const names: string[] = [];
    for (const path of modules) {
      if (/\.ko\.[a-z]+$/.test(path)) {
        throw new AgentError("failed_precondition", `compressed kernel module ${path}`);
      }
      names.push(moduleName(path));
      await copyFile(
        join(kernel.modulesDir, path),
        join(work, "root/mod", `${moduleName(path)}.ko`),
      );
    }
    // resize2fs grows the root filesystem to the overlay's size (disk_size_mb) at first boot.
    for (const file of [RESIZE2FS, ...(await sharedLibraries(RESIZE2FS))]) {
      await copyInto(join(work, "root"), file);
    }
    await mkdir(join(work, "root/etc"), { recursive: true });
    await symlink("/proc/mounts", join(work, "root/etc/mtab"));
    await writeFile(join(work, "root/init"), initScript(names), { mode: 0o755 });
    await runCommand("/bin/sh", [
      "-c",
      'cd "$1" && find . | cpio -o -H newc --quiet | gzip -1 > "$2"',
      "sh",
      join(work, "root"),
      join(work, "initrd.img"),
    ]);
    await mkdir(dir, { recursive: true });
    await rename(join(work, "initrd.img"), image);
    return image;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * A template's root filesystem as one ext4 image (raw, sparse), shared read-only by every VM of
 * the template under their own qcow2 overlays. The guest's tools (busybox, tini, the start
 * script) and envd are stacked over the template's layers with a read-only overlayfs, so the
 * template itself is never written.
 */
export async function buildBaseImage(opts: {
  image: string;
  layerDirs: readonly string[];
  envdDir: string;
}): Promise<void> {
  const work = `${opts.image}.build-${process.pid}`;
  const extra = join(work, "extra");
  const merged = join(work, "merged");
  let mounted = false;
  try {
    await mkdir(join(extra, GUEST_DIR.slice(1), "bin"), { recursive: true });
    await mkdir(join(extra, "run"), { recursive: true });
    await mkdir(merged, { recursive: true });
    await copyFile(BUSYBOX, join(extra, GUEST_DIR.slice(1), "bin/busybox"));
    if (!existsSync(TINI)) {
      throw new AgentError("failed_precondition", `${TINI} is missing: install tini`);
    }
    await copyFile(TINI, join(extra, GUEST_DIR.slice(1), "bin/tini"));
    await cp(opts.envdDir, join(extra, GUEST_DIR.slice(1), "envd"), { recursive: true });
    await writeFile(join(extra, GUEST_DIR.slice(1), "start"), START_SCRIPT);
    const lower = [extra, ...opts.layerDirs].join(":");
    await runCommand("mount", ["-t", "overlay", "overlay", "-o", `ro,lowerdir=${lower}`, merged]);
    mounted = true;
    const { stdout } = await runCommand("du", ["-sm", "-x", merged]);
    const usedMb = Number(stdout.split(/\s/)[0]);
    const sizeMb = Math.ceil(usedMb * 1.2) + IMAGE_HEADROOM_MB;
    const tmp = join(work, "image");
    await runCommand("mkfs.ext4", [
      "-q",
      "-F",
      "-d",
      merged,
      "-L",
      "wrenn-root",
      tmp,
      `${sizeMb}M`,
    ]);
    await rename(tmp, opts.image);
  } finally {
    if (mounted) await runCommand("umount", [merged]).catch(() => {});
    await rm(work, { recursive: true, force: true });
  }
}

/** Virtual size of an image in MiB. */
export async function imageSizeMb(image: string): Promise<number> {
  return Math.ceil((await stat(image)).size / 2 ** 20);
}
