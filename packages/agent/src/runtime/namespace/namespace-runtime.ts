import { join } from "node:path";
import type { Readable } from "node:stream";
import { crashPoint } from "../../crash/index.js";
import { AgentError } from "../../errors.js";
import { isSandboxAlive } from "../../launcher/index.js";
import { StepTimer } from "../../logger/index.js";
import { AddressPool, hasEgressRules, type NetworkPolicy } from "../../network/index.js";
import { assertSandboxId, type SandboxRecord, StateStore } from "../../state/index.js";
import { assertRoomFor, DiskPool, diskUsage } from "../../storage/index.js";
import { assertSafeName, TemplateStore } from "../../template/index.js";
import { isForkLayer, refuseForkLayer } from "../fork-layers.js";
import { HostWatch } from "../host-watch.js";
import { DEFAULT_LIMITS, lockedLimits } from "../limits.js";
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
import { WarmPool } from "../warm-pool/index.js";
import { adoptSandboxes } from "./adoption.js";
import { buildSandbox, createCancelled, teardownSandbox } from "./assembly.js";
import { forkSandbox } from "./fork.js";
import {
  ENVD_PORT,
  type Live,
  type NamespaceParts,
  type NamespaceRuntimeOptions,
} from "./parts.js";
import { claimPooled, makePooled } from "./pool-claim.js";
import {
  deleteSnapshot,
  exportSnapshot,
  importSnapshot,
  listSnapshots,
  snapshotSandbox,
  sweepNamespaceForkLayers,
} from "./snapshots.js";

/**
 * Sandboxes as Linux namespaces: bwrap (PID, mount, IPC, UTS, cgroup namespaces) inside a netns
 * of its own, cgroup limits, and an overlayfs root whose upper layer sits on a sparse ext4 loop
 * disk. Each sandbox is recorded in `<agentDir>/sandboxes/<id>/sandbox.json` before any of
 * its resources exists, so a crash at any point leaves enough to clean up on the next start.
 * Assembly, pool claims, snapshots and adoption live in the files beside this one.
 */
export class NamespaceRuntime implements Runtime {
  readonly name = "namespace";
  readonly templateStore: TemplateStore;
  private readonly ns: NamespaceParts;

  constructor(opts: NamespaceRuntimeOptions) {
    const logger = opts.logger.child({ runtime: "namespace" });
    const sandboxes = new SandboxTable<Live>();
    const pool = opts.addressPool ?? new AddressPool();
    this.templateStore = new TemplateStore({
      agentDir: opts.agentDir,
      logger,
      // The default template is built after the start: its pool fills as soon as it exists.
      onBuilt: () => this.ns.warm.nudge(),
    });
    const ns: NamespaceParts = {
      name: this.name,
      opts,
      logger,
      state: new StateStore(opts.agentDir),
      pool,
      disks: new DiskPool({
        dir: join(opts.agentDir, "disk-pool"),
        yieldTo: () => ns.warm.quiet(),
        log: logger,
      }),
      templateStore: this.templateStore,
      sandboxes,
      warm: new WarmPool<Live>({
        setting: opts.warmPool ?? [],
        defaultDiskSizeMb: DEFAULT_LIMITS.diskSizeMb,
        make: (target) => makePooled(ns, target),
        discard: (live) =>
          teardownSandbox(ns, live.record.resourceId, live.record, new StepTimer()),
        memoryOf: async (live) => (await live.cgroup!.stats()).memoryBytes ?? 0,
        logger,
        refillDelayMs: opts.warmPoolRefillDelayMs ?? 100,
      }),
      watch: new HostWatch<Live>({
        pool,
        logger,
        sandboxes: () => sandboxes.values(),
        network: (live) => live.network,
        alive: async (live) => !live.record.process || isSandboxAlive(live.record.process),
      }),
    };
    this.ns = ns;
  }

  /** Ready sandboxes in the warm pool now. */
  get warmPoolSize(): number {
    return this.ns.warm.size;
  }

  /** Resolves once no warm-pool refill is under way. */
  warmPoolIdle(): Promise<void> {
    return this.ns.warm.idle();
  }

  async create(
    spec: SandboxSpec,
    options: { signal?: AbortSignal; fork?: boolean } = {},
  ): Promise<SandboxInfo> {
    // While any create is under way the pool builds nothing: requests get the CPU first.
    const creating = this.ns.warm.begin();
    try {
      return await this.createNow(spec, options, creating.record);
    } finally {
      creating.end();
      // The template may have just been built, or a ready sandbox claimed: refill (later).
      this.ns.warm.fill();
    }
  }

  private async createNow(
    spec: SandboxSpec,
    options: { signal?: AbortSignal; fork?: boolean },
    recordDemand: (template: string, diskSizeMb: number) => void,
  ): Promise<SandboxInfo> {
    const { ns } = this;
    assertSandboxId(spec.id);
    assertSafeName(spec.template, "template name");
    checkEgress(spec);
    // Only a fork starts from a fork layer.
    if (!options.fork) refuseForkLayer(spec.template, "template");
    if (ns.sandboxes.has(spec.id) || (await ns.state.read(spec.id).catch(() => true))) {
      throw new AgentError("already_exists", `sandbox ${spec.id} already exists`);
    }
    const id = spec.id;
    const timer = new StepTimer();
    await ns.watch.ensureStarted();
    const template = await timer.step("template", () =>
      ns.templateStore.ensureTemplate(spec.template),
    );
    const limits = lockedLimits(spec, template);
    await assertRoomFor(ns.opts.agentDir, limits.diskSizeMb);
    // A fork layer serves one fork: nothing to keep warm for it.
    if (!options.fork) recordDemand(template.name, limits.diskSizeMb);
    // The caller may have left while the template was made ready: nothing is made for it then.
    if (options.signal?.aborted) throw createCancelled();
    const claimed = options.fork ? undefined : await claimPooled(ns, spec, limits, timer);
    if (claimed) {
      // A build checks the signal as it goes; a claim is short, so it is checked once, after.
      if (options.signal?.aborted) {
        await this.destroy(id);
        throw createCancelled();
      }
      ns.logger.info(
        { op: "create", sandboxId: id, template: template.name, ms: timer.ms, steps: timer.steps },
        "sandbox created from the warm pool",
      );
      return this.info(claimed);
    }
    const record: SandboxRecord = {
      id,
      resourceId: id,
      pooled: false,
      runtime: this.name,
      phase: "creating",
      template: template.name,
      layers: template.layers,
      ...limits,
      timeoutSec: spec.timeoutSec ?? 0,
      allowInternetAccess: spec.allowInternetAccess ?? false,
      ...(hasEgressRules(spec.egress) && { egress: spec.egress }),
      metadata: spec.metadata ?? {},
      createdAt: new Date().toISOString(),
      autoPaused: false,
    };
    const live: Live = { record, state: "pending", queue: Promise.resolve() };
    // Claimed synchronously after the check above: a concurrent create of the same id fails.
    if (ns.sandboxes.has(id)) {
      throw new AgentError("already_exists", `sandbox ${id} already exists`);
    }
    ns.sandboxes.set(id, live);

    const created = buildSandbox(ns, live, spec.envs, template, timer, options.signal);
    live.queue = created.catch(() => {});
    await created;
    ns.logger.info(
      { op: "create", sandboxId: id, template: template.name, ms: timer.ms, steps: timer.steps },
      "sandbox created",
    );
    return this.info(live);
  }

  async destroy(id: string): Promise<void> {
    const { ns } = this;
    const live = ns.sandboxes.get(id);
    await serialize(live, async () => {
      const timer = new StepTimer();
      live.record.phase = "destroying";
      await timer.step("record", () => ns.state.write(live.record));
      crashPoint("destroy:record");
      const errors = await teardownSandbox(
        ns,
        live.record.resourceId,
        live.record,
        timer,
        "destroy",
      );
      if (errors.length > 0) {
        live.state = "error";
        live.error = errors.map((e) => e.message).join("; ");
        ns.logger.error(
          { op: "destroy", sandboxId: id, ms: timer.ms, steps: timer.steps, errors: live.error },
          "sandbox destroy incomplete",
        );
        throw new AgentError("internal", `destroy ${id}: ${live.error}`, {
          cause: new AggregateError(errors),
        });
      }
      ns.sandboxes.delete(id);
      ns.logger.info(
        { op: "destroy", sandboxId: id, ms: timer.ms, steps: timer.steps },
        "sandbox destroyed",
      );
    });
    // The last fork of a fork layer takes the layer with it.
    if (live.record.layers.some(isForkLayer)) {
      await sweepNamespaceForkLayers(ns).catch(() => {});
    }
  }

  fork(id: string, targets: ForkTarget[]): Promise<ForkResult> {
    return forkSandbox(
      this.ns,
      id,
      targets,
      (spec) => this.create(spec, { fork: true }),
      (forkId) => this.destroy(forkId),
    );
  }

  async pause(id: string, options: { auto?: boolean } = {}): Promise<SandboxInfo> {
    const { ns } = this;
    const live = ns.sandboxes.get(id);
    return serialize(live, async () => {
      expectState(live, "running", "pause");
      const timer = new StepTimer();
      await timer.step("freeze", () => live.cgroup!.freeze());
      crashPoint("pause:freeze");
      live.state = "paused";
      live.record.phase = "paused";
      live.record.autoPaused = options.auto ?? false;
      await timer.step("record", () => ns.state.write(live.record));
      crashPoint("pause:record");
      ns.logger.info(
        {
          op: "pause",
          sandboxId: id,
          auto: live.record.autoPaused,
          ms: timer.ms,
          steps: timer.steps,
        },
        "sandbox paused",
      );
      return this.info(live);
    });
  }

  async resume(id: string): Promise<SandboxInfo> {
    const { ns } = this;
    const live = ns.sandboxes.get(id);
    return serialize(live, async () => {
      expectState(live, "paused", "resume");
      const timer = new StepTimer();
      await timer.step("thaw", () => live.cgroup!.thaw());
      crashPoint("resume:thaw");
      live.state = "running";
      live.record.phase = "running";
      live.record.autoPaused = false;
      await timer.step("record", () => ns.state.write(live.record));
      crashPoint("resume:record");
      ns.logger.info(
        { op: "resume", sandboxId: id, ms: timer.ms, steps: timer.steps },
        "sandbox resumed",
      );
      return this.info(live);
    });
  }

  async setTimeout(id: string, timeoutSec: number): Promise<SandboxInfo> {
    const live = this.ns.sandboxes.get(id);
    return serialize(live, async () => {
      live.record.timeoutSec = timeoutSec;
      await this.ns.state.write(live.record);
      return this.info(live);
    });
  }

  async setNetwork(id: string, policy: NetworkPolicy): Promise<SandboxInfo> {
    const live = this.ns.sandboxes.get(id);
    return serialize(live, async () => {
      await setLiveNetworkPolicy(live, policy, (record) => this.ns.state.write(record));
      return this.info(live);
    });
  }

  get(id: string): SandboxInfo {
    return this.info(this.ns.sandboxes.get(id));
  }

  list(): SandboxInfo[] {
    return [...this.ns.sandboxes.values()].map((live) => this.info(live));
  }

  async metrics(id: string): Promise<SandboxMetrics> {
    const live = this.ns.sandboxes.get(id);
    if (!live.cgroup || !live.disk) {
      throw new AgentError("failed_precondition", `sandbox ${id} is ${live.state}`);
    }
    const [stats, usage] = await Promise.all([live.cgroup.stats(), diskUsage(live.disk.imagePath)]);
    const now = performance.now();
    const usec = stats.cpuUsageUsec ?? 0;
    const prev = live.lastCpu;
    live.lastCpu = { at: now, usec };
    const quotaUsec = prev ? (now - prev.at) * 1000 * live.record.vcpus : 0;
    return {
      timestamp: new Date(),
      cpuCount: live.record.vcpus,
      cpuUsedPct: quotaUsec > 0 ? Math.min(100, ((usec - prev!.usec) / quotaUsec) * 100) : 0,
      cpuUsageUsec: usec,
      memUsedBytes: stats.memoryBytes ?? 0,
      memLimitBytes: stats.memoryLimitBytes ?? 0,
      diskUsedBytes: usage.allocatedBytes,
      diskLimitBytes: usage.limitBytes ?? live.disk.sizeBytes,
      pids: stats.pidsCurrent ?? 0,
      pidsLimit: stats.pidsLimit ?? 0,
    };
  }

  snapshot(id: string, name: string): Promise<SnapshotInfo> {
    return snapshotSandbox(this.ns, id, name);
  }

  deleteSnapshot(name: string): Promise<void> {
    return deleteSnapshot(this.ns, name);
  }

  listSnapshots(): Promise<SnapshotInfo[]> {
    return listSnapshots(this.ns);
  }

  exportSnapshot(name: string): Promise<{ info: SnapshotInfo; archive: Readable }> {
    return exportSnapshot(this.ns, name);
  }

  importSnapshot(
    name: string,
    archive: Readable,
    meta: { sourceSandboxId: string },
  ): Promise<SnapshotInfo> {
    return importSnapshot(this.ns, name, archive, meta);
  }

  get sandboxCidr(): string {
    return this.ns.pool.cidr;
  }

  async templates(): Promise<TemplateSummary[]> {
    const all = await this.templateStore.listTemplates();
    return all
      .filter((t) => !isForkLayer(t.name))
      .map((t) => ({ name: t.name, ready: true, sizeBytes: t.sizeBytes }));
  }

  async adopt(): Promise<AdoptReport> {
    const report = await adoptSandboxes(this.ns);
    // Fork layers whose sandboxes did not survive the restart.
    await sweepNamespaceForkLayers(this.ns).catch((err) => report.errors.push(err));
    return report;
  }

  /** Claimed sandboxes keep running; pooled ones are removed (nobody could ever use them). */
  async close(): Promise<void> {
    const { ns } = this;
    ns.watch.stop();
    const errors = await ns.warm.drain();
    await Promise.allSettled([...ns.sandboxes.values()].map((live) => live.queue));
    // The ready disks hold loop devices and mounts: not left behind by a clean stop.
    errors.push(...(await ns.disks.clear()));
    ns.sandboxes.clear();
    if (errors.length > 0) {
      throw new AggregateError(errors, "cannot remove the warm pool or the disk pool");
    }
  }

  private info(live: Live): SandboxInfo {
    const address = live.network ? `${live.network.sandboxAddress}:${ENVD_PORT}` : "";
    return sandboxInfo(this.name, live, address);
  }
}
