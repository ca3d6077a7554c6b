import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AgentError } from "../../errors.js";
import { Rollback, runCommand } from "../../host/index.js";
import { isSandboxAlive, killSandbox, readProcStat } from "../../launcher/index.js";
import type { StepTimer } from "../../logger/index.js";
import { addVmTap, createNetwork, removeNetwork } from "../../network/index.js";
import type { SandboxRecord } from "../../state/index.js";
import {
  type EnvdTarget,
  execEnvd,
  expectEnvdLocked,
  initEnvd,
  waitForEnvd,
  warmUpEnvd,
} from "../envd-health.js";
import { throwAll } from "../limits.js";
import { ENVD_PORT } from "../namespace/index.js";
import { pointDnsAtForwarder } from "../network-policy.js";
import { envFile, GUEST_ADDRESS, GUEST_DIR, GUEST_GATEWAY, GUEST_PREFIX } from "./guest-files.js";
import { GUEST_MAC, type VmLive, type VmParts } from "./parts.js";
import { restoreVm, saveVm, startQemu, type VmPaths } from "./qemu.js";
import { QmpClient } from "./qmp.js";
import { vmPaths } from "./vm-store.js";

/** How long a restored VM's envd may take to take its token (one try: see initEnvd). */
const RESTORE_INIT_TIMEOUT_MS = 60_000;

/**
 * Where a VM starts from: a cold boot of a base image, or a snapshot's disk, RAM and state
 * (with the access token its envd requires, if it has one).
 */
export type VmSource =
  | { kind: "boot"; image: string }
  | { kind: "restore"; snapshotDir: string; accessToken?: string | undefined };

/** A fresh envd access token (256 random bits). */
export function newEnvdToken(): string {
  return randomBytes(32).toString("hex");
}

export function vmDir(vp: VmParts, resourceId: string): string {
  return join(vp.state.sandboxDir(resourceId), "vm");
}

export function envdOf(live: VmLive): EnvdTarget {
  return {
    host: live.network!.sandboxAddress,
    port: ENVD_PORT,
    ...(live.record.envdAccessToken !== undefined && {
      accessToken: live.record.envdAccessToken,
    }),
  };
}

/** Network, tap, disk overlay and QEMU; each undone (newest first) if a later step fails. */
export async function buildVm(
  vp: VmParts,
  live: VmLive,
  source: VmSource,
  envs: Record<string, string> | undefined,
  timer: StepTimer,
  signal: AbortSignal | undefined,
): Promise<void> {
  const { record } = live;
  const id = record.resourceId;
  const rollback = new Rollback();
  try {
    await timer.step("record", () => vp.state.write(record));
    const host = await timer.step("host", () => vp.host());
    const paths = live.paths;
    const files = timer.step("disk", async () => {
      await mkdir(vmDir(vp, id), { recursive: true, mode: 0o700 });
      // envd's own environment (e.g. its access token) goes in through fw_cfg at boot.
      const bootEnvs = source.kind === "boot" ? { ...envs } : {};
      if (source.kind === "boot" && record.envdAccessToken) {
        bootEnvs.WRENN_ENVD_ACCESS_TOKEN = record.envdAccessToken;
      }
      await writeFile(paths.env, envFile(bootEnvs), { mode: 0o600 });
      if (source.kind === "boot") {
        await runCommand("qemu-img", [
          ...["create", "-q", "-f", "qcow2", "-F", "raw", "-b", source.image, paths.disk],
          // The guest grows its filesystem to this at boot (resize2fs in the initramfs).
          `${record.diskSizeMb}M`,
        ]);
      } else {
        const snap = vmPaths(source.snapshotDir);
        await runCommand("qemu-img", [
          ...["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", snap.disk, paths.disk],
        ]);
        // The RAM file becomes this VM's own: copied sparse, so a mostly idle guest is cheap.
        if (!vp.opts.eagerRestore) {
          await runCommand("cp", ["--sparse=always", "--reflink=auto", snap.ram, paths.ram]);
        }
      }
    });
    const network = timer.step("network", async () => {
      const addresses = vp.pool.allocate(id);
      try {
        live.network = await createNetwork({
          sandboxId: id,
          addresses,
          allowInternet: record.allowInternetAccess,
          ...(record.egress && { egress: record.egress }),
          log: vp.logger,
        });
      } catch (err) {
        vp.pool.release(id);
        throw err;
      }
      rollback.add(async () => {
        await throwAll(removeNetwork(id));
        vp.pool.release(id);
      });
      await addVmTap(live.network, {
        gatewayAddress: GUEST_GATEWAY,
        guestAddress: GUEST_ADDRESS,
        prefixLength: GUEST_PREFIX,
      });
    });
    const prepared = await Promise.allSettled([files, network]);
    for (const result of prepared) if (result.status === "rejected") throw result.reason;
    signal?.throwIfAborted();
    const restore = source.kind === "restore";
    const proc = await timer.step("qemu", () =>
      startQemu({
        paths,
        kernel: host.kernel,
        initrd: host.initrd,
        netnsPath: live.network!.netnsPath,
        vcpus: record.vcpus,
        memoryMb: record.memoryMb,
        accel: host.accel,
        eager: vp.opts.eagerRestore,
        incoming: restore,
        mac: GUEST_MAC,
      }),
    );
    rollback.add(() => killSandbox(proc));
    record.process = proc;
    await timer.step("record-process", () => vp.state.write(record));
    if (source.kind === "restore") {
      const snap = vmPaths(source.snapshotDir);
      await timer.step("restore", () => loadState(paths, snap.state, vp.opts.eagerRestore));
      // Every restore of a snapshot starts with the snapshot's token: replace it with this
      // sandbox's own before anything else, so no other sandbox's token opens this one.
      await timer.step("token", async () => {
        const envd = { ...envdOf(live), accessToken: source.accessToken };
        // A VM just restored under TCG on a busy host (several forks at once) can take seconds.
        await initEnvd(
          envd,
          {
            ...(record.envdAccessToken !== undefined && { accessToken: record.envdAccessToken }),
            ...(envs && Object.keys(envs).length > 0 && { envVars: envs }),
          },
          RESTORE_INIT_TIMEOUT_MS,
        );
        if (record.envdAccessToken) await expectEnvdLocked(envdOf(live));
      });
      await timer.step("clock", () => syncClock(live));
    } else {
      await timer.step("boot", () =>
        waitForEnvd({
          ...envdOf(live),
          timeoutMs: vp.opts.bootTimeoutMs ?? 180_000,
          alive: () => isSandboxAlive(proc),
          signal,
        }),
      );
      await timer.step("warm-up", () => warmUpEnvd(envdOf(live)));
    }
    await timer.step("dns", () => pointDnsAtForwarder(envdOf(live), live.network!));
    record.phase = "running";
    await vp.state.write(record);
    live.state = "running";
  } catch (err) {
    const rollbackErrors = await rollback.undo();
    if (rollbackErrors.length === 0) {
      await vp.state.remove(id).catch((rmErr) => rollbackErrors.push(rmErr));
    }
    if (rollbackErrors.length === 0) vp.sandboxes.delete(record.id);
    else {
      live.state = "error";
      live.error = `create failed and so did its cleanup: ${String(rollbackErrors[0])}`;
    }
    vp.logger.warn(
      { op: "create", sandboxId: record.id, ms: timer.ms, steps: timer.steps, err, rollbackErrors },
      "microVM create failed",
    );
    if (signal?.aborted) throw new AgentError("unavailable", "create was cancelled");
    throw AgentError.from(err);
  }
}

/** Connects to the VM's QMP socket and loads `statePath` into the QEMU waiting for it. */
async function loadState(paths: VmPaths, statePath: string, eager = false): Promise<void> {
  const qmp = await QmpClient.connect(paths.qmp);
  try {
    await restoreVm(qmp, { ...paths, state: statePath }, eager);
  } finally {
    qmp.close();
  }
}

/**
 * The guest's clock stood still while it was saved: set it from the host's (through envd, as
 * root, with the busybox every image carries).
 */
export async function syncClock(live: VmLive): Promise<void> {
  const now = (Date.now() / 1000).toFixed(3).split(".")[0]!;
  const code = await execEnvd(envdOf(live), `${GUEST_DIR}/bin/busybox`, ["date", "-s", `@${now}`]);
  if (code !== 0) throw new AgentError("internal", `setting the guest clock exited ${code}`);
}

/** Pause: QMP stop, device state saved beside the RAM file, QEMU gone. */
export async function saveAndStop(live: VmLive, eager = false): Promise<void> {
  const qmp = await QmpClient.connect(live.paths.qmp);
  try {
    await saveVm(qmp, live.paths, eager);
  } finally {
    qmp.close();
  }
  // quit was sent: wait for the process to go (killed if it lingers).
  if (live.record.process) await killSandbox(live.record.process, 10_000).catch(() => {});
  live.record.process = undefined;
}

/** Resume: a new QEMU mapping the saved RAM, loaded from the saved device state. */
export async function startSaved(vp: VmParts, live: VmLive, timer: StepTimer): Promise<void> {
  const host = await vp.host();
  const { record } = live;
  const proc = await timer.step("qemu", () =>
    startQemu({
      paths: live.paths,
      kernel: host.kernel,
      initrd: host.initrd,
      netnsPath: live.network!.netnsPath,
      vcpus: record.vcpus,
      memoryMb: record.memoryMb,
      accel: host.accel,
      eager: vp.opts.eagerRestore,
      incoming: true,
      mac: GUEST_MAC,
    }),
  );
  record.process = proc;
  try {
    await timer.step("restore", () =>
      loadState(live.paths, live.paths.state, vp.opts.eagerRestore),
    );
    await timer.step("clock", () => syncClock(live));
  } catch (err) {
    await killSandbox(proc).catch(() => {});
    record.process = undefined;
    throw err;
  }
}

/**
 * Removes everything a microVM sandbox may have: QEMU, netns (with its tap), address, files.
 * Every step is tried; the record goes only if all succeeded.
 */
export async function teardownVm(
  vp: VmParts,
  resourceId: string,
  record: SandboxRecord | undefined,
  timer: StepTimer,
): Promise<Error[]> {
  const errors: Error[] = [];
  const attempt = async (step: string, work: () => Promise<unknown>) => {
    try {
      await timer.step(step, work);
    } catch (err) {
      errors.push(AgentError.from(err));
    }
  };
  if (record?.process) await attempt("kill", () => killSandbox(record.process!));
  // A crash between QEMU's start and the record naming it leaves only its pid file.
  await attempt("kill-unrecorded", () => killByPidFile(vmPaths(vmDir(vp, resourceId))));
  await attempt("network", async () => {
    const failures = await removeNetwork(resourceId);
    vp.pool.release(resourceId);
    if (failures.length > 0) throw new AggregateError(failures, failures.join("; "));
  });
  if (errors.length === 0) await attempt("files", () => vp.state.remove(resourceId));
  return errors;
}

/** Kills the QEMU a pid file names, if that process is still this VM's (its QMP path). */
async function killByPidFile(paths: VmPaths): Promise<void> {
  const pid = Number(await readFile(paths.pidFile, "utf8").catch(() => ""));
  if (!pid) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (!cmdline.includes(paths.qmp)) return;
  const stat = await readProcStat(pid);
  if (stat) await killSandbox({ pid, startTime: stat.startTime });
}
