import { readFile, stat } from "node:fs/promises";
import { AgentError } from "../../errors.js";
import { isSandboxAlive } from "../../launcher/index.js";
import { StepTimer } from "../../logger/index.js";
import { AddressPool, hasEgressRules, type NetworkPolicy } from "../../network/index.js";
import { assertSandboxId, type SandboxRecord, StateStore } from "../../state/index.js";
import { assertSafeName, TemplateStore } from "../../template/index.js";
import { isForkLayer, refuseForkLayer } from "../fork-layers.js";
import { HostWatch } from "../host-watch.js";
import { lockedLimits } from "../limits.js";
import { ENVD_PORT } from "../namespace/index.js";
import { checkEgress, setLiveNetworkPolicy } from "../network-policy.js";
import { expectState, SandboxTable, sandboxInfo, serialize } from "../sandbox-table.js";
import type {
  AdoptReport,
  ForkResult,
  ForkTarget,
  Runtime,
  SandboxInfo,
  SandboxMetrics,
  SandboxSpec,
  SnapshotInfo,
  TemplateSummary,
} from "../types.js";
import { ensureInitramfs, findKernel, imageSizeMb } from "./guest-image.js";
import type { MicroVmRuntimeOptions, VmHost, VmLive, VmParts } from "./parts.js";
import { type Accel, detectAccel, QEMU, qemuVersion } from "./qemu.js";
import { adoptVms } from "./vm-adoption.js";
import {
  buildVm,
  newEnvdToken,
  saveAndStop,
  startSaved,
  teardownVm,
  vmDir,
} from "./vm-assembly.js";
import { forkVm, sweepVmForkLayers } from "./vm-fork.js";
import {
  deleteVmSnapshot,
  ensureImage,
  ensureReady,
  snapshotInfo,
  snapshotVm,
  sweepTemplateImages,
} from "./vm-snapshots.js";
import { VmStore, vmPaths } from "./vm-store.js";

/**
 * Sandboxes as QEMU microVMs: their own kernel, the template's image under a qcow2 overlay, a
 * tap in the sandbox's netns. Pause saves the device state beside the file-backed RAM and
 * ends QEMU; resume maps that RAM again lazily. Every create restores a snapshot: a user's, or
 * the template booted once (per vCPUs × RAM) with envd ready.
 */
export class MicroVmRuntime implements Runtime {
  readonly name = "microvm";
  private readonly vp: VmParts;
  private hostInfo: Promise<VmHost> | undefined;
  private accel: Promise<Accel> | undefined;
  private readonly stopWatchingDeletes: () => void;

  constructor(opts: MicroVmRuntimeOptions) {
    const logger = opts.logger.child({ runtime: "microvm" });
    const sandboxes = new SandboxTable<VmLive>();
    const pool = opts.addressPool ?? new AddressPool();
    this.vp = {
      name: this.name,
      opts,
      logger,
      state: new StateStore(opts.agentDir),
      pool,
      templateStore: opts.templateStore ?? new TemplateStore({ agentDir: opts.agentDir, logger }),
      store: new VmStore(opts.agentDir),
      sandboxes,
      watch: new HostWatch<VmLive>({
        pool,
        logger,
        sandboxes: () => sandboxes.values(),
        network: (live) => live.network,
        // A paused VM has no process: its files are what keeps it.
        alive: async (live) =>
          live.state === "paused" ||
          live.switching === true ||
          !live.record.process ||
          isSandboxAlive(live.record.process),
      }),
      host: () => this.host(),
    };
    // A deleted snapshot template leaves its image and ready snapshots: gone once unused.
    this.stopWatchingDeletes = this.vp.templateStore.onDeleted(() => void this.sweepImages());
  }

  private async sweepImages(): Promise<void> {
    await sweepTemplateImages(this.vp).catch((err: unknown) =>
      this.vp.logger.warn({ err }, "removing the images of deleted templates failed"),
    );
  }

  /**
   * Whether microVMs work here and how: the guest kernel and QEMU are there, and KVM if it
   * works, else TCG. Cheap (no image is built): what the agent probes at start.
   */
  probe(): Promise<Accel> {
    this.accel ??= (async () => {
      const kernel = await findKernel();
      if (!(await qemuVersion())) {
        throw new AgentError("failed_precondition", `${QEMU} not found: install qemu-system-x86`);
      }
      return this.vp.opts.accel ?? detectAccel(kernel.kernelPath);
    })().catch((err: unknown) => {
      this.accel = undefined;
      throw err;
    });
    return this.accel;
  }

  /** Kernel, initramfs (built once per kernel, on first use) and accelerator. */
  host(): Promise<VmHost> {
    this.hostInfo ??= (async () => {
      const kernel = await findKernel();
      const [initrd, accel] = await Promise.all([
        ensureInitramfs(this.vp.store.dir, kernel),
        this.probe(),
      ]);
      return { kernel: kernel.kernelPath, initrd, accel };
    })().catch((err: unknown) => {
      this.hostInfo = undefined;
      throw err;
    });
    return this.hostInfo;
  }

  async create(
    spec: SandboxSpec,
    options: { signal?: AbortSignal; fork?: boolean } = {},
  ): Promise<SandboxInfo> {
    const { vp } = this;
    assertSandboxId(spec.id);
    assertSafeName(spec.template, "template name");
    checkEgress(spec);
    // Only a fork starts from a fork layer.
    if (!options.fork) refuseForkLayer(spec.template, "template");
    if (vp.sandboxes.has(spec.id) || (await vp.state.read(spec.id).catch(() => true))) {
      throw new AgentError("already_exists", `sandbox ${spec.id} already exists`);
    }
    const timer = new StepTimer();
    await vp.watch.ensureStarted();
    let snapshot = await vp.store.readSnapshot(spec.template);
    if (snapshot?.ready) snapshot = undefined;
    let limits: ReturnType<typeof lockedLimits>;
    let template = spec.template;
    if (snapshot) {
      limits = lockedLimits(spec, { ...snapshot, name: snapshot.name }, { strict: true });
    } else {
      // A base template, or a filesystem snapshot of one: a template built from a recipe or a
      // namespace sandbox's snapshot. Either is only files (a snapshot's processes are not in
      // it): the image stacks the whole layer chain, and the VM booted once from it is
      // snapshotted only after envd answers ready, i.e. after the template's start command
      // passed its ready check (see ensureReady), so every create restores it running.
      const info = await timer.step("template", () => vp.templateStore.ensureTemplate(template));
      // What a snapshot records (vCPUs, RAM, disk) it locks, as on the namespace runtime.
      limits = lockedLimits(spec, info);
      const image = await timer.step("image", () => ensureImage(vp, info));
      // The overlay cannot be smaller than the image under it.
      limits.diskSizeMb = Math.max(limits.diskSizeMb, await imageSizeMb(image));
      snapshot = await timer.step("ready", () => ensureReady(vp, info, limits));
      template = info.name;
    }
    const record: SandboxRecord = {
      id: spec.id,
      resourceId: spec.id,
      pooled: false,
      runtime: this.name,
      phase: "creating",
      template,
      layers: [snapshot.name],
      ...limits,
      timeoutSec: spec.timeoutSec ?? 0,
      allowInternetAccess: spec.allowInternetAccess ?? false,
      ...(hasEgressRules(spec.egress) && { egress: spec.egress }),
      metadata: spec.metadata ?? {},
      createdAt: new Date().toISOString(),
      autoPaused: false,
      // Its own: set in envd right after the restore, replacing the snapshot's.
      envdAccessToken: newEnvdToken(),
    };
    const live: VmLive = {
      record,
      state: "pending",
      queue: Promise.resolve(),
      paths: vmPaths(vmDir(vp, spec.id)),
    };
    if (vp.sandboxes.has(spec.id)) {
      throw new AgentError("already_exists", `sandbox ${spec.id} already exists`);
    }
    vp.sandboxes.set(spec.id, live);
    const source = {
      kind: "restore" as const,
      snapshotDir: vp.store.snapshotDir(snapshot.name),
      accessToken: snapshot.envdAccessToken,
    };
    const created = buildVm(vp, live, source, spec.envs, timer, options.signal);
    live.queue = created.catch(() => {});
    await created;
    vp.logger.info(
      { op: "create", sandboxId: spec.id, template, ms: timer.ms, steps: timer.steps },
      "microVM created",
    );
    return this.info(live);
  }

  async destroy(id: string): Promise<void> {
    const { vp } = this;
    const live = vp.sandboxes.get(id);
    await serialize(live, async () => {
      const timer = new StepTimer();
      live.record.phase = "destroying";
      await timer.step("record", () => vp.state.write(live.record));
      const errors = await teardownVm(vp, live.record.resourceId, live.record, timer);
      if (errors.length > 0) {
        live.state = "error";
        live.error = errors.map((e) => e.message).join("; ");
        throw new AgentError("internal", `destroy ${id}: ${live.error}`, {
          cause: new AggregateError(errors),
        });
      }
      vp.sandboxes.delete(id);
      vp.logger.info({ op: "destroy", sandboxId: id, ms: timer.ms }, "microVM destroyed");
    });
    // The last fork of a fork layer takes the layer with it.
    if (live.record.layers.some(isForkLayer)) await sweepVmForkLayers(vp).catch(() => {});
    // The last sandbox of a deleted template takes its image and ready snapshot with it.
    const layer = await vp.store.readSnapshot(live.record.layers[0] ?? "");
    if (layer?.ready && !(await this.hasTemplate(layer.baseTemplate))) await this.sweepImages();
  }

  private hasTemplate(name: string): Promise<boolean> {
    return this.vp.templateStore.getTemplate(name).then(
      () => true,
      () => false,
    );
  }

  fork(id: string, targets: ForkTarget[]): Promise<ForkResult> {
    return forkVm(
      this.vp,
      id,
      targets,
      (spec) => this.create(spec, { fork: true }),
      (forkId) => this.destroy(forkId),
    );
  }

  async pause(id: string, options: { auto?: boolean } = {}): Promise<SandboxInfo> {
    const { vp } = this;
    const live = vp.sandboxes.get(id);
    return serialize(live, async () => {
      expectState(live, "running", "pause");
      const timer = new StepTimer();
      live.switching = true;
      try {
        await timer.step("save", () => saveAndStop(live, vp.opts.eagerRestore));
      } finally {
        live.switching = false;
      }
      live.state = "paused";
      live.record.phase = "paused";
      live.record.autoPaused = options.auto ?? false;
      await timer.step("record", () => vp.state.write(live.record));
      vp.logger.info(
        {
          op: "pause",
          sandboxId: id,
          auto: live.record.autoPaused,
          ms: timer.ms,
          steps: timer.steps,
        },
        "microVM paused",
      );
      return this.info(live);
    });
  }

  async resume(id: string): Promise<SandboxInfo> {
    const { vp } = this;
    const live = vp.sandboxes.get(id);
    return serialize(live, async () => {
      expectState(live, "paused", "resume");
      const timer = new StepTimer();
      live.switching = true;
      try {
        await startSaved(vp, live, timer);
      } finally {
        live.switching = false;
      }
      live.state = "running";
      live.record.phase = "running";
      live.record.autoPaused = false;
      await timer.step("record", () => vp.state.write(live.record));
      vp.logger.info(
        { op: "resume", sandboxId: id, ms: timer.ms, steps: timer.steps },
        "microVM resumed",
      );
      return this.info(live);
    });
  }

  async setTimeout(id: string, timeoutSec: number): Promise<SandboxInfo> {
    const live = this.vp.sandboxes.get(id);
    return serialize(live, async () => {
      live.record.timeoutSec = timeoutSec;
      await this.vp.state.write(live.record);
      return this.info(live);
    });
  }

  async setNetwork(id: string, policy: NetworkPolicy): Promise<SandboxInfo> {
    const live = this.vp.sandboxes.get(id);
    return serialize(live, async () => {
      await setLiveNetworkPolicy(live, policy, (record) => this.vp.state.write(record));
      return this.info(live);
    });
  }

  get(id: string): SandboxInfo {
    return this.info(this.vp.sandboxes.get(id));
  }

  list(): SandboxInfo[] {
    return [...this.vp.sandboxes.values()].map((live) => this.info(live));
  }

  /** QEMU's own figures: its RSS is the VM's host memory (0 while paused). */
  async metrics(id: string): Promise<SandboxMetrics> {
    const live = this.vp.sandboxes.get(id);
    const proc = live.state === "running" ? live.record.process : undefined;
    const [status, statLine, disk] = await Promise.all([
      proc ? readFile(`/proc/${proc.pid}/status`, "utf8").catch(() => "") : "",
      proc ? readFile(`/proc/${proc.pid}/stat`, "utf8").catch(() => "") : "",
      stat(live.paths.disk).catch(() => undefined),
    ]);
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    const fields = statLine.slice(statLine.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
    const now = performance.now();
    const prev = live.lastCpu;
    live.lastCpu = { at: now, ticks };
    // Clock ticks are 10 ms on Linux (USER_HZ = 100).
    const usec = ticks * 10_000;
    const quotaUsec = prev ? (now - prev.at) * 1000 * live.record.vcpus : 0;
    return {
      timestamp: new Date(),
      cpuCount: live.record.vcpus,
      cpuUsedPct:
        quotaUsec > 0 ? Math.min(100, ((ticks - prev!.ticks) * 10_000 * 100) / quotaUsec) : 0,
      cpuUsageUsec: usec,
      memUsedBytes: rssKb * 1024,
      memLimitBytes: live.record.memoryMb * 2 ** 20,
      diskUsedBytes: disk ? disk.blocks * 512 : 0,
      diskLimitBytes: live.record.diskSizeMb * 2 ** 20,
      pids: proc ? 1 : 0,
      pidsLimit: 0,
    };
  }

  snapshot(id: string, name: string): Promise<SnapshotInfo> {
    return snapshotVm(this.vp, id, name);
  }

  async deleteSnapshot(name: string): Promise<void> {
    await deleteVmSnapshot(this.vp, name);
    // It may have been the last thing standing on a deleted template's image.
    await this.sweepImages();
  }

  async listSnapshots(): Promise<SnapshotInfo[]> {
    const all = await this.vp.store.listSnapshots();
    return Promise.all(
      all.filter((m) => !m.ready && !isForkLayer(m.name)).map((m) => snapshotInfo(this.vp, m)),
    );
  }

  /** A template (base or snapshot) is ready for microVMs once it has a booted snapshot. */
  async templates(): Promise<TemplateSummary[]> {
    const [all, snapshots] = await Promise.all([
      this.vp.templateStore.listTemplates(),
      this.vp.store.listSnapshots(),
    ]);
    return all
      .filter((t) => !isForkLayer(t.name))
      .map((t) => ({
        name: t.name,
        ready: snapshots.some((s) => s.ready && s.baseTemplate === t.name),
        sizeBytes: t.sizeBytes,
      }));
  }

  async adopt(): Promise<AdoptReport> {
    const report = await adoptVms(this.vp);
    // Fork layers whose VMs did not survive the restart.
    await sweepVmForkLayers(this.vp).catch((err) => report.errors.push(err));
    await this.sweepImages();
    return report;
  }

  /** VMs keep running (or stay saved) for the next start. */
  async close(): Promise<void> {
    this.stopWatchingDeletes();
    this.vp.watch.stop();
    await Promise.allSettled([...this.vp.sandboxes.values()].map((live) => live.queue));
    this.vp.sandboxes.clear();
  }

  private info(live: VmLive): SandboxInfo {
    const address = live.network ? `${live.network.sandboxAddress}:${ENVD_PORT}` : "";
    return sandboxInfo(this.name, live, address);
  }
}
