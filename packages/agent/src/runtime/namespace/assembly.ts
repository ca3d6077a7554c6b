import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createCgroup, openCgroup } from "../../cgroup/index.js";
import { crashPoint } from "../../crash/index.js";
import { AgentError } from "../../errors.js";
import { Rollback } from "../../host/index.js";
import { isSandboxAlive, killSandbox, launchSandbox } from "../../launcher/index.js";
import type { StepTimer } from "../../logger/index.js";
import { createNetwork, removeNetwork, type SandboxNetwork } from "../../network/index.js";
import type { SandboxRecord } from "../../state/index.js";
import { createSandboxDisk, destroySandboxDisk, mountRootfs } from "../../storage/index.js";
import type { TemplateInfo } from "../../template/index.js";
import { initEnvd, waitForEnvd } from "../envd-health.js";
import { throwAll } from "../limits.js";
import {
  ENVD_PORT,
  type Live,
  type NamespaceParts,
  SANDBOX_HOSTNAME,
  storageDir,
} from "./parts.js";
import { writeResolvConf } from "./resolv-conf.js";

/**
 * CPU weight (v2 scale, 100 = default) of a pooled sandbox: its start yields the CPU to
 * sandboxes in use, whose commands would otherwise wait behind a refill. Restored on claim.
 */
const POOLED_CPU_WEIGHT = 10;

/** A create whose caller left (its signal aborted) before it was done. */
export function createCancelled(): AgentError {
  return new AgentError("unavailable", "create was cancelled");
}

/** The steps of create, each undone (newest first) if a later one fails. */
export async function buildSandbox(
  ns: NamespaceParts,
  live: Live,
  envs: Record<string, string> | undefined,
  template: TemplateInfo,
  timer: StepTimer,
  signal: AbortSignal | undefined,
): Promise<void> {
  const { record } = live;
  // Host resources are named by the resource id (the public id, unless made for the pool).
  const id = record.resourceId;
  const rollback = new Rollback();
  // Kept in the root-only record: the proxy and adoption after a restart need it.
  record.envdAccessToken ??= randomBytes(32).toString("hex");
  const accessToken = record.envdAccessToken;
  // Disk, network and cgroup, once started: all settled before anything is undone.
  let preparing: Promise<unknown>[] = [];
  try {
    await timer.step("record", () => ns.state.write(record));
    crashPoint("create:record");
    const sandboxDir = ns.state.sandboxDir(id);

    // Disk, network and cgroup do not depend on each other: made at the same time, each
    // registering its undo once made, and all settled before a failure is acted on. envd starts
    // as soon as the netns is linked: the egress rules are made while it starts.
    const addresses = ns.pool.allocate(id);
    let linked: (network: SandboxNetwork) => void = () => {};
    const netnsLinked = new Promise<SandboxNetwork>((resolve) => {
      linked = resolve;
    });
    const disk = timer.step("disk", async () => {
      const made = await createSandboxDisk({
        dir: storageDir(sandboxDir),
        diskSizeMb: record.diskSizeMb,
        pool: ns.disks,
      });
      // The undo also unmounts the rootfs below, whatever happens to it.
      rollback.add(() => throwAll(destroySandboxDisk(storageDir(sandboxDir))));
      const layers = template.layers.map((layer) => ns.templateStore.rootfsDir(layer));
      // Into the upper layer before the overlay is mounted: it would not see a later write.
      await timer.step("dns", () => writeResolvConf(made.upperDir, layers, addresses.hostAddress));
      await timer.step("rootfs", () => mountRootfs(made, layers));
      live.disk = made;
      crashPoint("create:disk");
    });
    const network = timer.step("network", async () => {
      try {
        live.network = await createNetwork({
          sandboxId: id,
          addresses,
          allowInternet: record.allowInternetAccess,
          ...(record.egress && { egress: record.egress }),
          log: ns.logger,
          onLinked: linked,
        });
      } catch (err) {
        // createNetwork removed what it made; an existing network is not ours to remove.
        ns.pool.release(id);
        throw err;
      }
      rollback.add(async () => {
        await throwAll(removeNetwork(id));
        ns.pool.release(id);
      });
      crashPoint("create:network");
    });
    const cgroup = timer.step("cgroup", async () => {
      live.cgroup = await createCgroup(id, {
        vcpus: record.vcpus,
        memoryMb: record.memoryMb,
        pidsLimit: ns.opts.pidsLimit ?? 1024,
        ...(record.pooled && { cpuWeight: POOLED_CPU_WEIGHT }),
      });
      const made = live.cgroup;
      rollback.add(() => made.remove());
      crashPoint("create:cgroup");
    });
    preparing = [disk, network, cgroup];
    const linkedOrMade = Promise.race([netnsLinked, network.then(() => live.network!)]);
    const launchable = await Promise.allSettled([disk, cgroup, linkedOrMade]);
    for (const result of launchable) if (result.status === "rejected") throw result.reason;
    const { netnsPath } = await linkedOrMade;
    signal?.throwIfAborted();
    const proc = await timer.step("launch", () =>
      launchSandbox({
        sandboxId: id,
        rootfsDir: live.disk!.rootfsDir,
        netnsPath,
        cgroupProcsFiles: live.cgroup!.procsFiles,
        envdDir: ns.opts.envdDir,
        hostname: SANDBOX_HOSTNAME,
        // The request's envs are not envd's own (NODE_OPTIONS or WRENN_ENVD_* would change envd
        // itself): they go to the processes it starts, by /init below, as when claiming.
        secretEnvs: { WRENN_ENVD_ACCESS_TOKEN: accessToken },
        logFile: join(sandboxDir, "envd.log"),
        seccompFile: join(ns.opts.agentDir, "seccomp.bpf"),
      }),
    );
    rollback.add(() => killSandbox(proc));
    record.process = { pid: proc.pid, startTime: proc.startTime };
    crashPoint("create:launch");
    await timer.step("record-process", () => ns.state.write(record));
    await network;
    const { sandboxAddress } = live.network!;
    await timer.step("envd-ready", () =>
      waitForEnvd({
        host: sandboxAddress,
        port: ENVD_PORT,
        accessToken,
        timeoutMs: ns.opts.envdReadyTimeoutMs ?? 30_000,
        alive: () => isSandboxAlive(proc),
        ready: proc.ready,
        signal,
      }),
    );
    // envd starts processes with a clean environment: the create's envs reach them as /init's
    // defaults (as on the warm-pool path), not through envd's own environment.
    if (envs && Object.keys(envs).length > 0) {
      await timer.step("envd-init", () =>
        initEnvd({ host: sandboxAddress, port: ENVD_PORT, accessToken }, { envVars: envs }),
      );
    }
    crashPoint("create:envd-ready");
    record.phase = "running";
    await ns.state.write(record);
    crashPoint("create:running");
    live.state = "running";
  } catch (err) {
    await Promise.allSettled(preparing);
    const rollbackErrors = await rollback.undo();
    // The record stays while anything is left, so the next start finishes the cleanup.
    if (rollbackErrors.length === 0) {
      await ns.state.remove(id).catch((rmErr) => rollbackErrors.push(rmErr));
    }
    if (rollbackErrors.length === 0) ns.sandboxes.delete(record.id);
    else {
      live.state = "error";
      live.error = `create failed and so did its cleanup: ${String(rollbackErrors[0])}`;
    }
    ns.logger.warn(
      {
        op: "create",
        sandboxId: record.id,
        resourceId: id,
        ms: timer.ms,
        steps: timer.steps,
        err,
        rollbackErrors,
      },
      "sandbox create failed",
    );
    if (signal?.aborted) throw createCancelled();
    throw AgentError.from(err);
  }
}

/**
 * Removes everything a sandbox may have, whatever state it was left in: every step is tried
 * (all are idempotent) and all failures are returned. The record goes only if all succeeded.
 */
export async function teardownSandbox(
  ns: NamespaceParts,
  resourceId: string,
  record: SandboxRecord | undefined,
  timer: StepTimer,
  /** Names the steps for `crashPoint` (the crash suite): `<crashAs>:<step>`. */
  crashAs?: string,
): Promise<Error[]> {
  const errors: Error[] = [];
  const attempt = async (step: string, work: () => Promise<unknown>) => {
    try {
      await timer.step(step, work);
      if (crashAs) crashPoint(`${crashAs}:${step}`);
    } catch (err) {
      errors.push(AgentError.from(err));
    }
  };
  // A frozen (paused) sandbox takes no signals on cgroup v1: thaw it so the kill lands.
  await attempt("thaw", async () => {
    const cgroup = await openCgroup(resourceId);
    // A half-made cgroup (a crash mid-create) may lack the freezer: nothing to thaw then.
    if (await cgroup?.isFrozen().catch(() => false)) await cgroup?.thaw();
  });
  if (record?.process) await attempt("kill", () => killSandbox(record.process!));
  // Also kills whatever got into the cgroup if the process was never recorded.
  await attempt("cgroup", async () => (await openCgroup(resourceId))?.remove());
  await attempt("network", async () => {
    const failures = await removeNetwork(resourceId);
    ns.pool.release(resourceId);
    if (failures.length > 0) throw new AggregateError(failures, failures.join("; "));
  });
  const sandboxDir = ns.state.sandboxDir(resourceId);
  await attempt("disk", () => throwAll(destroySandboxDisk(storageDir(sandboxDir))));
  if (errors.length === 0) await attempt("record", () => ns.state.remove(resourceId));
  return errors;
}
