import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentError } from "../../errors.js";
import { runCommand } from "../../host/index.js";
import { readProcStat, type SandboxProcess } from "../../launcher/index.js";
import { VM_TAP } from "../../network/index.js";
import { FW_CFG_ENV } from "./guest-files.js";
import type { QmpClient } from "./qmp.js";

export const QEMU = process.env.WRENN_QEMU || "qemu-system-x86_64";

export type Accel = "kvm" | "tcg";

/** Files of one VM, all in its sandbox's `vm/` directory. */
export interface VmPaths {
  disk: string;
  /** Guest RAM (file-backed, shared: what a pause leaves on disk). */
  ram: string;
  /** Device state (and RAM too, for an eager save) written by a pause. */
  state: string;
  qmp: string;
  pidFile: string;
  console: string;
  env: string;
}

export interface VmSpec {
  paths: VmPaths;
  kernel: string;
  initrd: string;
  netnsPath: string;
  vcpus: number;
  memoryMb: number;
  accel: Accel;
  /** RAM in an anonymous mapping, saved whole into the state file (for comparison only). */
  eager?: boolean;
  /** Start from `paths.state` instead of booting. */
  incoming?: boolean;
  mac: string;
}

/** How long a guest kernel gets to boot to its panic under KVM before KVM counts as broken. */
const KVM_BOOT_PROBE_MS = 10_000;
/** Probe results, per boot of the host (tmpfs): a broken KVM costs its timeout once. */
const ACCEL_PROBE_DIR = "/run/wrenn/accel";

/**
 * Whether KVM works here: a guest kernel must boot under it. The existence of /dev/kvm proves
 * nothing, nor does QEMU opening it: nested or PVM hosts have both and hang the guest's first
 * instructions. The kernel boots with no root disk, panics and QEMU exits (TCG: about 2 s).
 */
export async function detectAccel(kernelPath: string): Promise<Accel> {
  const bootId = (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "")).trim();
  const key = createHash("sha256").update(`${bootId}\n${QEMU}\n${kernelPath}`).digest("hex");
  const cached = join(ACCEL_PROBE_DIR, key.slice(0, 32));
  const known = await readFile(cached, "utf8").catch(() => "");
  if (known === "kvm" || known === "tcg") return known;
  const accel: Accel = (await kvmBoots(kernelPath)) ? "kvm" : "tcg";
  await mkdir(ACCEL_PROBE_DIR, { recursive: true, mode: 0o700 })
    .then(() => writeFile(cached, accel))
    .catch(() => {});
  return accel;
}

async function kvmBoots(kernelPath: string): Promise<boolean> {
  try {
    const { stdout } = await runCommand(
      QEMU,
      [
        ...["-machine", "microvm,isa-serial=on", "-accel", "kvm", "-cpu", "host", "-m", "128M"],
        ...["-kernel", kernelPath, "-append", "console=ttyS0 panic=-1 reboot=t"],
        ...["-no-reboot", "-nodefaults", "-no-user-config", "-display", "none"],
        ...["-serial", "stdio"],
      ],
      { timeoutMs: KVM_BOOT_PROBE_MS },
    );
    return stdout.includes("Kernel panic");
  } catch {
    return false;
  }
}

/** Whether QEMU runs here at all (TCG needs nothing else). */
export async function qemuVersion(): Promise<string | undefined> {
  try {
    const { stdout } = await runCommand(QEMU, ["--version"]);
    return /version (\S+)/.exec(stdout)?.[1];
  } catch {
    return undefined;
  }
}

/** The host TSC rate: under TCG the guest reads the host's TSC and cannot calibrate it. */
async function hostTscKhz(): Promise<number> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1] ?? 2000);
  return Math.round(mhz * 1000);
}

async function qemuArgs(spec: VmSpec): Promise<string[]> {
  const { paths } = spec;
  const khz = await hostTscKhz();
  const cmdline = [
    "console=ttyS0",
    "quiet",
    "panic=-1",
    "reboot=t",
    // Without KVM's clock the kernel would calibrate the TSC against a PIT that TCG emulates
    // too slowly to measure: tell it the rate (HZ=250 in Debian's kernels).
    `tsc_early_khz=${khz}`,
    "tsc=reliable",
    "no_timer_check",
    `lpj=${Math.round((khz * 1000) / 250)}`,
  ].join(" ");
  const memory = spec.eager
    ? `memory-backend-ram,id=mem,size=${spec.memoryMb}M`
    : `memory-backend-file,id=mem,size=${spec.memoryMb}M,mem-path=${paths.ram},share=on`;
  return [
    "-machine",
    "microvm,acpi=on,pit=on,pic=on,rtc=on,isa-serial=on,memory-backend=mem",
    "-accel",
    spec.accel === "tcg" ? "tcg,tb-size=64" : "kvm",
    "-cpu",
    spec.accel === "kvm" ? "host" : "max",
    "-smp",
    String(spec.vcpus),
    "-m",
    `${spec.memoryMb}M`,
    "-object",
    memory,
    "-kernel",
    spec.kernel,
    "-initrd",
    spec.initrd,
    "-append",
    cmdline,
    "-no-reboot",
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-drive",
    `id=root,file=${paths.disk},format=qcow2,if=none,cache=unsafe,discard=unmap`,
    "-device",
    "virtio-blk-device,drive=root",
    "-netdev",
    `tap,id=net0,ifname=${VM_TAP},script=no,downscript=no`,
    "-device",
    `virtio-net-device,netdev=net0,mac=${spec.mac}`,
    "-fw_cfg",
    `name=${FW_CFG_ENV},file=${paths.env}`,
    "-qmp",
    `unix:${paths.qmp},server=on,wait=off`,
    "-serial",
    `file:${paths.console}`,
    "-pidfile",
    paths.pidFile,
    "-daemonize",
    ...(spec.incoming ? ["-incoming", "defer"] : []),
  ];
}

/**
 * Starts QEMU inside the sandbox's netns (where its tap is), detached: it outlives the agent
 * and is adopted again through its QMP socket. Resolves once QMP listens.
 */
export async function startQemu(spec: VmSpec): Promise<SandboxProcess> {
  const args = [`--net=${spec.netnsPath}`, QEMU, ...(await qemuArgs(spec))];
  await new Promise<void>((resolve, reject) => {
    const child = spawn("nsenter", args, { stdio: ["ignore", "ignore", "pipe"] });
    const err: Buffer[] = [];
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", (cause) => reject(AgentError.from(cause)));
    child.on("close", (code) => {
      if (code === 0) resolve();
      else {
        const message = Buffer.concat(err).toString().trim();
        reject(new AgentError("internal", `qemu exited with ${code}: ${message}`));
      }
    });
  });
  const pid = Number((await readFile(spec.paths.pidFile, "utf8")).trim());
  const stat = await readProcStat(pid);
  if (!stat) throw new AgentError("internal", "qemu exited right after its start");
  return { pid, startTime: stat.startTime };
}

/** Polls the migration under way until it completes. */
async function migrationDone(qmp: QmpClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await qmp.execute<{ status?: string; "error-desc"?: string }>("query-migrate");
    if (status.status === "completed") return;
    if (status.status === "failed" || status.status === "cancelled") {
      throw new AgentError("internal", `migration ${status.status}: ${status["error-desc"] ?? ""}`);
    }
    if (Date.now() > deadline) throw new AgentError("internal", "migration timed out");
    await sleep(5);
  }
}

const quote = (path: string) => `'${path.replaceAll("'", `'\\''`)}'`;

function ignoreSharedRam(qmp: QmpClient, on: boolean): Promise<unknown> {
  return qmp.execute("migrate-set-capabilities", {
    capabilities: [{ capability: "x-ignore-shared", state: on }],
  });
}

/**
 * Stops the guest and writes its device state to `paths.state`; with file-backed shared RAM
 * the RAM is already in `paths.ram` and is skipped (x-ignore-shared). QEMU is told to quit.
 */
export async function saveVm(qmp: QmpClient, paths: VmPaths, eager: boolean): Promise<void> {
  await qmp.execute("stop");
  await ignoreSharedRam(qmp, !eager);
  await qmp.execute("migrate", { uri: `exec:cat > ${quote(paths.state)}` });
  await migrationDone(qmp, 120_000);
  await qmp.execute("quit").catch(() => {});
}

/** Loads a saved VM into a QEMU started with `incoming`, then lets it run. */
export async function restoreVm(qmp: QmpClient, paths: VmPaths, eager: boolean): Promise<void> {
  await ignoreSharedRam(qmp, !eager);
  await qmp.execute("migrate-incoming", { uri: `exec:cat ${quote(paths.state)}` });
  await migrationDone(qmp, 120_000);
  await qmp.execute("cont");
}
