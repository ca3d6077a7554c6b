import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { createCgroup, openCgroup, type SandboxCgroup } from "../../cgroup/index.js";
import { AgentError } from "../../errors.js";
import { Rollback } from "../../host/index.js";
import { isSandboxAlive, killSandbox, launchSandbox } from "../../launcher/index.js";
import { StepTimer } from "../../logger/index.js";
import {
  AddressPool,
  addInternetMemberCommand,
  createNetwork,
  ensureHostFirewall,
  hostFirewallInstalled,
  openNetwork,
  removeInternetMember,
  removeNetwork,
  runCommands,
  type SandboxNetwork,
} from "../../network/index.js";
import { assertSandboxId, type SandboxRecord, StateStore } from "../../state/index.js";
import {
  createSandboxDisk,
  DiskPool,
  destroySandboxDisk,
  diskUsage,
  mountRootfs,
  openSandboxDisk,
  type SandboxDisk,
} from "../../storage/index.js";
import { assertSafeName, type TemplateInfo, TemplateStore } from "../../template/index.js";
import type {
  AdoptReport,
  Runtime,
  SandboxInfo,
  SandboxMetrics,
  SandboxSpec,
  SnapshotInfo,
  TemplateSummary,
} from "../types.js";
import { type EnvdTarget, initEnvd, waitForEnvd, warmUpEnvd } from "./envd-health.js";
import { WarmPool, type WarmPoolTarget } from "./warm-pool.js";

export const ENVD_PORT = 49983;
const WATCH_INTERVAL_MS = 2_000;
/** Every sandbox's hostname: a pooled one is launched before its id is known. */
export const SANDBOX_HOSTNAME = "sandbox";
/**
 * CPU weight (v2 scale, 100 = default) of a pooled sandbox: its start yields the CPU to
 * sandboxes in use, whose commands would otherwise wait behind a refill. Restored on claim.
 */
const POOLED_CPU_WEIGHT = 10;
const CPU_WEIGHT = 100;

/** Limits a sandbox gets when the request leaves them at 0. */
export const DEFAULT_LIMITS = { vcpus: 1, memoryMb: 512, diskSizeMb: 1024 } as const;

export interface NamespaceRuntimeOptions {
  /** State directory: sandboxes/<id>/ and templates/<name>/. */
  agentDir: string;
  /** Host directory holding envd.js, mounted read-only into every sandbox. */
  envdDir: string;
  logger: Logger;
  /** Default: from WRENN_SANDBOX_CIDR, else 10.213.0.0/16. */
  addressPool?: AddressPool;
  /** Most tasks per sandbox (fork bombs stop here). */
  pidsLimit?: number;
  /** How long create waits for envd's /health. */
  envdReadyTimeoutMs?: number;
  /**
   * Ready sandboxes kept per template (none by default). A template's pool fills once the
   * template exists: at adopt if it is built already, else after the first create builds it.
   */
  warmPool?: readonly WarmPoolTarget[];
  /** Quiet time after a claim before the refill starts (default 100 ms). */
  warmPoolRefillDelayMs?: number;
}

/** What the runtime holds for a live sandbox. */
interface Live {
  record: SandboxRecord;
  state: SandboxInfo["state"];
  error?: string;
  network?: SandboxNetwork;
  cgroup?: SandboxCgroup;
  disk?: SandboxDisk;
  /** Serializes lifecycle operations on this sandbox. */
  queue: Promise<unknown>;
  lastCpu?: { at: number; usec: number };
}

/**
 * Sandboxes as Linux namespaces: bwrap (PID, mount, IPC, UTS, cgroup namespaces) inside a netns
 * of its own, cgroup limits, and an overlayfs root whose upper layer sits on a sparse ext4 loop
 * disk. Each sandbox is recorded in `<agentDir>/sandboxes/<id>/sandbox.json` before any of
 * its resources exists, so a crash at any point leaves enough to clean up on the next start.
 */
export class NamespaceRuntime implements Runtime {
  readonly name = "namespace";
  readonly templateStore: TemplateStore;
  private readonly state: StateStore;
  private readonly pool: AddressPool;
  /** Disks made ahead of time, so a create renames one instead of running mkfs and mount. */
  private readonly disks: DiskPool;
  private readonly logger: Logger;
  /** By public id; pooled sandboxes are only in `warm`. */
  private readonly sandboxes = new Map<string, Live>();
  private readonly warm: WarmPool<Live>;
  private readonly opts: NamespaceRuntimeOptions;
  private firewall: Promise<unknown> | undefined;
  private checkingFirewall = false;
  private watcher: NodeJS.Timeout | undefined;

  constructor(opts: NamespaceRuntimeOptions) {
    this.opts = opts;
    this.logger = opts.logger.child({ runtime: "namespace" });
    this.state = new StateStore(opts.agentDir);
    this.templateStore = new TemplateStore({ agentDir: opts.agentDir, logger: this.logger });
    this.pool = opts.addressPool ?? new AddressPool();
    this.disks = new DiskPool({ dir: join(opts.agentDir, "disk-pool"), log: this.logger });
    this.warm = new WarmPool<Live>({
      targets: opts.warmPool ?? [],
      make: (target) => this.makePooled(target),
      discard: (live) => this.teardown(live.record.resourceId, live.record, new StepTimer()),
      logger: this.logger,
      refillDelayMs: opts.warmPoolRefillDelayMs ?? 100,
    });
  }

  get sandboxCidr(): string {
    return this.pool.cidr;
  }

  /** Ready sandboxes in the warm pool now. */
  get warmPoolSize(): number {
    return this.warm.size;
  }

  /** Resolves once no warm-pool refill is under way. */
  warmPoolIdle(): Promise<void> {
    return this.warm.idle();
  }

  async create(spec: SandboxSpec, options: { signal?: AbortSignal } = {}): Promise<SandboxInfo> {
    assertSandboxId(spec.id);
    assertSafeName(spec.template, "template name");
    if (this.sandboxes.has(spec.id) || (await this.state.read(spec.id).catch(() => true))) {
      throw new AgentError("already_exists", `sandbox ${spec.id} already exists`);
    }
    const id = spec.id;
    const timer = new StepTimer();
    await this.ensureStarted();
    const template = await timer.step("template", () =>
      this.templateStore.ensureTemplate(spec.template),
    );
    const limits = lockedLimits(spec, template);
    // Snapshots lock their own limits and layers: those always take the cold path.
    const claimed = template.kind === "base" ? await this.claim(spec, limits, timer) : undefined;
    if (claimed) {
      this.logger.info(
        { op: "create", sandboxId: id, template: template.name, ms: timer.ms, steps: timer.steps },
        "sandbox created from the warm pool",
      );
      this.warm.fill();
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
      metadata: spec.metadata ?? {},
      createdAt: new Date().toISOString(),
      autoPaused: false,
    };
    const live: Live = { record, state: "pending", queue: Promise.resolve() };
    // Claimed synchronously after the check above: a concurrent create of the same id fails.
    if (this.sandboxes.has(id))
      throw new AgentError("already_exists", `sandbox ${id} already exists`);
    this.sandboxes.set(id, live);

    const created = this.build(live, spec.envs, template, timer, options.signal);
    live.queue = created.catch(() => {});
    await created;
    this.logger.info(
      { op: "create", sandboxId: id, template: template.name, ms: timer.ms, steps: timer.steps },
      "sandbox created",
    );
    // The template may have just been built: the pool can fill now.
    this.warm.fill();
    return this.info(live);
  }

  /**
   * A ready sandbox from the warm pool, made the caller's: its limits, internet access and envs
   * are applied live and its record is rewritten under the public id. Undefined when the pool
   * has none that fits (or claiming failed, leaving the caller to the cold path).
   */
  private async claim(
    spec: SandboxSpec,
    limits: ReturnType<typeof lockedLimits>,
    timer: StepTimer,
  ): Promise<Live | undefined> {
    for (;;) {
      if (this.sandboxes.has(spec.id)) {
        throw new AgentError("already_exists", `sandbox ${spec.id} already exists`);
      }
      const live = this.warm.take(spec.template, (l) => l.record.diskSizeMb === limits.diskSizeMb);
      if (!live) return undefined;
      const { record } = live;
      // Taken and listed synchronously: a concurrent create of the same id fails.
      this.sandboxes.set(spec.id, live);
      Object.assign(record, {
        id: spec.id,
        pooled: false,
        ...limits,
        timeoutSec: spec.timeoutSec ?? 0,
        allowInternetAccess: spec.allowInternetAccess ?? false,
        metadata: spec.metadata ?? {},
        createdAt: new Date().toISOString(),
        autoPaused: false,
      });
      try {
        await timer.step("claim", async () => {
          if (!(await isSandboxAlive(record.process!))) {
            throw new AgentError("internal", "the pooled sandbox exited");
          }
          const envd = envdOf(live);
          await Promise.all([
            live.cgroup!.setLimits({
              vcpus: record.vcpus,
              memoryMb: record.memoryMb,
              cpuWeight: CPU_WEIGHT,
            }),
            record.allowInternetAccess && this.setInternet(live.network!, true),
            spec.envs &&
              Object.keys(spec.envs).length > 0 &&
              initEnvd(envd, { envVars: spec.envs }),
          ]);
        });
        // Until this write the record says pooled: a crash before it leaves debris, not a sandbox.
        await timer.step("record", () => this.state.write(record));
        return live;
      } catch (err) {
        this.sandboxes.delete(spec.id);
        this.logger.warn(
          { op: "claim", sandboxId: spec.id, resourceId: record.resourceId, err },
          "warm sandbox unusable, removing it",
        );
        void this.teardown(record.resourceId, record, new StepTimer()).then((errors) => {
          if (errors.length > 0) this.logger.error({ errors }, "warm sandbox cleanup failed");
        });
      }
    }
  }

  /** One ready sandbox for the warm pool, under a resource id of its own. */
  private async makePooled(target: WarmPoolTarget): Promise<Live> {
    const template = await this.templateStore.getTemplate(target.template);
    const resourceId = `pool-${randomBytes(6).toString("hex")}`;
    const record: SandboxRecord = {
      id: resourceId,
      resourceId,
      pooled: true,
      runtime: this.name,
      phase: "creating",
      template: template.name,
      layers: template.layers,
      ...DEFAULT_LIMITS,
      diskSizeMb: target.diskSizeMb ?? DEFAULT_LIMITS.diskSizeMb,
      timeoutSec: 0,
      allowInternetAccess: false,
      metadata: {},
      createdAt: new Date().toISOString(),
      autoPaused: false,
    };
    const live: Live = { record, state: "pending", queue: Promise.resolve() };
    const timer = new StepTimer();
    // A failure is rolled back by build (or left recorded for the next start to remove).
    await this.build(live, undefined, template, timer, undefined);
    try {
      await timer.step("warm-up", () => warmUpEnvd(envdOf(live)));
    } catch (err) {
      await throwAll(this.teardown(resourceId, record, new StepTimer()));
      throw err;
    }
    this.logger.debug(
      { op: "pool", resourceId, template: template.name, ms: timer.ms, steps: timer.steps },
      "warm sandbox ready",
    );
    return live;
  }

  /** Live change of the sandbox's membership in the firewall's internet set. */
  private async setInternet(network: SandboxNetwork, allow: boolean): Promise<void> {
    if (allow) {
      await runCommands([await addInternetMemberCommand(network.hostIf, network.sandboxAddress)]);
    } else {
      await removeInternetMember(network.hostIf);
    }
  }

  /** The steps of create, each undone (newest first) if a later one fails. */
  private async build(
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
    try {
      await timer.step("record", () => this.state.write(record));
      const sandboxDir = this.state.sandboxDir(id);

      // Disk, network and cgroup do not depend on each other: made at the same time, each
      // registering its undo once made, and all settled before a failure is acted on.
      const disk = timer.step("disk", async () => {
        const made = await createSandboxDisk({
          dir: storageDir(sandboxDir),
          diskSizeMb: record.diskSizeMb,
          pool: this.disks,
        });
        // The undo also unmounts the rootfs below, whatever happens to it.
        rollback.add(() => throwAll(destroySandboxDisk(storageDir(sandboxDir))));
        await timer.step("rootfs", () =>
          mountRootfs(
            made,
            template.layers.map((layer) => this.templateStore.rootfsDir(layer)),
          ),
        );
        live.disk = made;
      });
      const network = timer.step("network", async () => {
        const addresses = this.pool.allocate(id);
        try {
          live.network = await createNetwork({
            sandboxId: id,
            addresses,
            allowInternet: record.allowInternetAccess,
            log: this.logger,
          });
        } catch (err) {
          // createNetwork removed what it made; an existing network is not ours to remove.
          this.pool.release(id);
          throw err;
        }
        rollback.add(async () => {
          await throwAll(removeNetwork(id));
          this.pool.release(id);
        });
      });
      const cgroup = timer.step("cgroup", async () => {
        live.cgroup = await createCgroup(id, {
          vcpus: record.vcpus,
          memoryMb: record.memoryMb,
          pidsLimit: this.opts.pidsLimit ?? 1024,
          ...(record.pooled && { cpuWeight: POOLED_CPU_WEIGHT }),
        });
        const made = live.cgroup;
        rollback.add(() => made.remove());
      });
      const prepared = await Promise.allSettled([disk, network, cgroup]);
      for (const result of prepared) if (result.status === "rejected") throw result.reason;
      const { sandboxAddress, netnsPath } = live.network!;
      signal?.throwIfAborted();
      const proc = await timer.step("launch", () =>
        launchSandbox({
          sandboxId: id,
          rootfsDir: live.disk!.rootfsDir,
          netnsPath,
          cgroupProcsFiles: live.cgroup!.procsFiles,
          envdDir: this.opts.envdDir,
          hostname: SANDBOX_HOSTNAME,
          // The request's envs are not envd's own (NODE_OPTIONS or WRENN_ENVD_* would change
          // envd itself): they go to the processes it starts, by /init below, as when claiming.
          secretEnvs: { WRENN_ENVD_ACCESS_TOKEN: accessToken },
          logFile: join(sandboxDir, "envd.log"),
        }),
      );
      rollback.add(() => killSandbox(proc));
      record.process = proc;
      await timer.step("record-process", () => this.state.write(record));
      await timer.step("envd-ready", () =>
        waitForEnvd({
          host: sandboxAddress,
          port: ENVD_PORT,
          accessToken,
          timeoutMs: this.opts.envdReadyTimeoutMs ?? 30_000,
          alive: () => isSandboxAlive(proc),
          signal,
        }),
      );
      if (envs && Object.keys(envs).length > 0) {
        await timer.step("envs", () => initEnvd(envdOf(live), { envVars: envs }));
      }
      record.phase = "running";
      await this.state.write(record);
      live.state = "running";
    } catch (err) {
      const rollbackErrors = await rollback.undo();
      // The record stays while anything is left, so the next start finishes the cleanup.
      if (rollbackErrors.length === 0) {
        await this.state.remove(id).catch((rmErr) => rollbackErrors.push(rmErr));
      }
      if (rollbackErrors.length === 0) this.sandboxes.delete(record.id);
      else {
        live.state = "error";
        live.error = `create failed and so did its cleanup: ${String(rollbackErrors[0])}`;
      }
      this.logger.warn(
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
      if (signal?.aborted) throw new AgentError("unavailable", "create was cancelled");
      throw AgentError.from(err);
    }
  }

  async destroy(id: string): Promise<void> {
    const live = this.live(id);
    await this.serialize(live, async () => {
      const timer = new StepTimer();
      live.record.phase = "destroying";
      await timer.step("record", () => this.state.write(live.record));
      const errors = await this.teardown(live.record.resourceId, live.record, timer);
      if (errors.length > 0) {
        live.state = "error";
        live.error = errors.map((e) => e.message).join("; ");
        this.logger.error(
          { op: "destroy", sandboxId: id, ms: timer.ms, steps: timer.steps, errors: live.error },
          "sandbox destroy incomplete",
        );
        throw new AgentError("internal", `destroy ${id}: ${live.error}`, {
          cause: new AggregateError(errors),
        });
      }
      this.sandboxes.delete(id);
      this.logger.info(
        { op: "destroy", sandboxId: id, ms: timer.ms, steps: timer.steps },
        "sandbox destroyed",
      );
    });
  }

  async pause(id: string, options: { auto?: boolean } = {}): Promise<SandboxInfo> {
    const live = this.live(id);
    return this.serialize(live, async () => {
      this.expectState(live, "running", "pause");
      const timer = new StepTimer();
      await timer.step("freeze", () => live.cgroup!.freeze());
      live.state = "paused";
      live.record.phase = "paused";
      live.record.autoPaused = options.auto ?? false;
      await timer.step("record", () => this.state.write(live.record));
      this.logger.info(
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
    const live = this.live(id);
    return this.serialize(live, async () => {
      this.expectState(live, "paused", "resume");
      const timer = new StepTimer();
      await timer.step("thaw", () => live.cgroup!.thaw());
      live.state = "running";
      live.record.phase = "running";
      live.record.autoPaused = false;
      await timer.step("record", () => this.state.write(live.record));
      this.logger.info(
        { op: "resume", sandboxId: id, ms: timer.ms, steps: timer.steps },
        "sandbox resumed",
      );
      return this.info(live);
    });
  }

  async setTimeout(id: string, timeoutSec: number): Promise<SandboxInfo> {
    const live = this.live(id);
    return this.serialize(live, async () => {
      live.record.timeoutSec = timeoutSec;
      await this.state.write(live.record);
      return this.info(live);
    });
  }

  get(id: string): SandboxInfo {
    return this.info(this.live(id));
  }

  list(): SandboxInfo[] {
    return [...this.sandboxes.values()].map((live) => this.info(live));
  }

  async metrics(id: string): Promise<SandboxMetrics> {
    const live = this.live(id);
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

  async snapshot(id: string, name: string): Promise<SnapshotInfo> {
    assertSafeName(name, "snapshot name");
    const live = this.live(id);
    return this.serialize(live, async () => {
      if (live.state !== "running" && live.state !== "paused") {
        throw new AgentError("failed_precondition", `sandbox ${id} is ${live.state}`);
      }
      const timer = new StepTimer();
      const wasRunning = live.state === "running";
      // Frozen while its upper layer is copied, so the snapshot is one consistent moment.
      if (wasRunning) await timer.step("freeze", () => live.cgroup!.freeze());
      let template: TemplateInfo;
      try {
        template = await timer.step("copy", () =>
          this.templateStore.writeSnapshotTemplate({
            name,
            parent: live.record.template,
            fromDir: live.disk!.upperDir,
            vcpus: live.record.vcpus,
            memoryMb: live.record.memoryMb,
            diskSizeMb: live.record.diskSizeMb,
          }),
        );
      } finally {
        if (wasRunning) await timer.step("thaw", () => live.cgroup!.thaw());
      }
      this.logger.info(
        { op: "snapshot", sandboxId: id, snapshot: name, ms: timer.ms, steps: timer.steps },
        "snapshot created",
      );
      await this.state.writeSnapshot(name, { sourceSandboxId: id });
      return this.snapshotInfo(template);
    });
  }

  async deleteSnapshot(name: string): Promise<void> {
    assertSafeName(name, "snapshot name");
    const template = await this.templateStore.getTemplate(name);
    if (template.kind !== "snapshot") {
      throw new AgentError("failed_precondition", `${name} is a template, not a snapshot`);
    }
    const users = this.usersOf(name);
    if (users.length > 0) {
      throw new AgentError(
        "failed_precondition",
        `snapshot ${name} is in use by sandbox(es) ${users.join(", ")}`,
      );
    }
    await this.templateStore.deleteTemplate(name);
    await this.state.removeSnapshot(name);
  }

  async exportSnapshot(name: string): Promise<{ info: SnapshotInfo; archive: Readable }> {
    assertSafeName(name, "snapshot name");
    const template = await this.templateStore.getTemplate(name);
    if (template.kind !== "snapshot") {
      throw new AgentError("not_found", `snapshot ${name} not found (${name} is a template)`);
    }
    const { archive } = await this.templateStore.exportTemplate(name);
    return { info: await this.snapshotInfo(template), archive };
  }

  async importSnapshot(
    name: string,
    archive: Readable,
    meta: { sourceSandboxId: string },
  ): Promise<SnapshotInfo> {
    const template = await this.templateStore.importSnapshotTemplate(name, archive);
    await this.state.writeSnapshot(name, { sourceSandboxId: meta.sourceSandboxId });
    this.logger.info(
      { op: "import", snapshot: name, sizeBytes: template.sizeBytes },
      "snapshot imported",
    );
    return this.snapshotInfo(template);
  }

  async listSnapshots(): Promise<SnapshotInfo[]> {
    const all = await this.templateStore.listTemplates();
    return Promise.all(all.filter((t) => t.kind === "snapshot").map((t) => this.snapshotInfo(t)));
  }

  async templates(): Promise<TemplateSummary[]> {
    const all = await this.templateStore.listTemplates();
    return all.map((t) => ({ name: t.name, ready: true, sizeBytes: t.sizeBytes }));
  }

  async adopt(): Promise<AdoptReport> {
    const report: AdoptReport = { adopted: [], cleaned: [], errors: [] };
    await mkdir(this.opts.agentDir, { recursive: true, mode: 0o700 });
    await this.ensureStarted();
    await this.templateStore
      .removeDebris()
      .catch((err) => report.errors.push(AgentError.from(err)));
    // Ready disks are not trusted across a restart: made again on demand.
    report.errors.push(...(await this.disks.prune()));
    const inUse = new Set([...this.sandboxes.values()].map((live) => live.record.resourceId));
    // Directories are named by resource id; a claimed sandbox is adopted under its public id.
    for (const id of await this.state.ids()) {
      if (inUse.has(id)) continue;
      const timer = new StepTimer();
      let record: SandboxRecord | undefined;
      try {
        assertSandboxId(id);
        record = await this.state.read(id);
        // Pooled and never claimed: removed (the pool refills with fresh ones below).
        const adoptable = record?.phase === "running" || record?.phase === "paused";
        if (record && adoptable && !record.pooled && !this.sandboxes.has(record.id)) {
          const live = await this.reopen(record);
          if (live) {
            this.sandboxes.set(record.id, live);
            report.adopted.push(record.id);
            this.logger.info(
              {
                op: "adopt",
                sandboxId: record.id,
                resourceId: id,
                state: live.state,
                ms: timer.ms,
              },
              "sandbox adopted",
            );
            continue;
          }
        }
      } catch (err) {
        this.logger.warn({ resourceId: id, err }, "sandbox cannot be adopted, removing it");
      }
      const errors = await this.teardown(id, record, timer);
      if (errors.length === 0) report.cleaned.push(id);
      else report.errors.push(...errors);
      this.logger.info(
        {
          op: "cleanup",
          sandboxId: record?.id,
          resourceId: id,
          pooled: record?.pooled,
          phase: record?.phase,
          ms: timer.ms,
          steps: timer.steps,
          errors: errors.map(String),
        },
        "sandbox debris removed",
      );
    }
    this.warm.fill();
    return report;
  }

  /** Claimed sandboxes keep running; pooled ones are removed (nobody could ever use them). */
  async close(): Promise<void> {
    clearInterval(this.watcher);
    this.watcher = undefined;
    const errors = await this.warm.drain();
    await Promise.allSettled([...this.sandboxes.values()].map((live) => live.queue));
    // The ready disks hold loop devices and mounts: not left behind by a clean stop.
    errors.push(...(await this.disks.clear()));
    this.sandboxes.clear();
    if (errors.length > 0) {
      throw new AggregateError(errors, "cannot remove the warm pool or the disk pool");
    }
  }

  /** Handles of a recorded sandbox, if every part of it is still there and its envd runs. */
  private async reopen(record: SandboxRecord): Promise<Live | undefined> {
    if (!record.process || !(await isSandboxAlive(record.process))) return undefined;
    const rid = record.resourceId;
    const disk = await openSandboxDisk(storageDir(this.state.sandboxDir(rid)));
    const cgroup = await openCgroup(rid);
    const network = await openNetwork(rid, this.pool);
    if (!disk || !cgroup || !network) {
      if (network) this.pool.release(rid);
      return undefined;
    }
    const frozen = await cgroup.isFrozen();
    return {
      record: { ...record, phase: frozen ? "paused" : "running" },
      state: frozen ? "paused" : "running",
      disk,
      cgroup,
      network,
      queue: Promise.resolve(),
    };
  }

  /**
   * Removes everything a sandbox may have, whatever state it was left in: every step is tried
   * (all are idempotent) and all failures are returned. The record goes only if all succeeded.
   */
  private async teardown(
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
      this.pool.release(resourceId);
      if (failures.length > 0) throw new AggregateError(failures, failures.join("; "));
    });
    const sandboxDir = this.state.sandboxDir(resourceId);
    await attempt("disk", () => throwAll(destroySandboxDisk(storageDir(sandboxDir))));
    if (errors.length === 0) await attempt("record", () => this.state.remove(resourceId));
    return errors;
  }

  /**
   * Puts the firewall back when something removed it (a flushed ruleset, another program):
   * without it sandboxes could reach the host and the LAN. Re-adds the internet members too.
   */
  private async watchFirewall(): Promise<void> {
    if (this.checkingFirewall || !this.firewall) return;
    this.checkingFirewall = true;
    try {
      await this.firewall;
      if (await hostFirewallInstalled()) return;
      this.logger.warn("the host firewall was removed from outside; installing it again");
      await ensureHostFirewall({ cidr: this.pool.cidr });
      for (const live of this.sandboxes.values()) {
        if (live.record.allowInternetAccess && live.network) {
          await this.setInternet(live.network, true);
        }
      }
    } catch (err) {
      this.logger.error({ err }, "checking the host firewall failed");
    } finally {
      this.checkingFirewall = false;
    }
  }

  /**
   * A sandbox whose first process died (envd crashed, OOM-killed, killed from outside) turns
   * to `error`; its resources stay until it is destroyed.
   */
  private async watchProcesses(): Promise<void> {
    for (const live of this.sandboxes.values()) {
      const proc = live.record.process;
      const watched = () =>
        (live.state === "running" || live.state === "paused") && live.record.phase !== "destroying";
      if (!proc || !watched() || (await isSandboxAlive(proc)) || !watched()) continue;
      live.state = "error";
      live.error = "the sandbox's processes exited";
      this.logger.warn({ sandboxId: live.record.id }, "sandbox exited");
    }
  }

  private ensureStarted(): Promise<unknown> {
    this.watcher ??= setInterval(() => {
      void this.watchProcesses();
      void this.watchFirewall();
    }, WATCH_INTERVAL_MS).unref();
    this.firewall ??= ensureHostFirewall({ cidr: this.pool.cidr }).catch((err: unknown) => {
      this.firewall = undefined;
      throw err;
    });
    return this.firewall;
  }

  private live(id: string): Live {
    assertSandboxId(id);
    const live = this.sandboxes.get(id);
    if (!live) throw new AgentError("not_found", `sandbox ${id} not found`);
    return live;
  }

  private expectState(live: Live, state: SandboxInfo["state"], op: string): void {
    if (live.state !== state) {
      throw new AgentError(
        "failed_precondition",
        `cannot ${op} sandbox ${live.record.id}: it is ${live.state}`,
      );
    }
  }

  private serialize<T>(live: Live, work: () => Promise<T>): Promise<T> {
    const run = live.queue.then(work, work);
    live.queue = run.catch(() => {});
    return run;
  }

  private usersOf(layer: string): string[] {
    return [...this.sandboxes.values()]
      .filter((live) => live.record.layers.includes(layer))
      .map((live) => live.record.id);
  }

  private async snapshotInfo(template: TemplateInfo): Promise<SnapshotInfo> {
    const record = await this.state.readSnapshot(template.name);
    return {
      name: template.name,
      baseTemplate: template.layers[1] ?? "",
      sourceSandboxId: record?.sourceSandboxId ?? "",
      vcpus: template.vcpus ?? 0,
      memoryMb: template.memoryMb ?? 0,
      diskSizeMb: template.diskSizeMb ?? 0,
      sizeBytes: template.sizeBytes,
      createdAt: new Date(template.createdAt),
      sandboxCount: this.usersOf(template.name).length,
    };
  }

  private info(live: Live): SandboxInfo {
    const r = live.record;
    return {
      id: r.id,
      runtime: this.name,
      template: r.template,
      state: live.state,
      vcpus: r.vcpus,
      memoryMb: r.memoryMb,
      diskSizeMb: r.diskSizeMb,
      timeoutSec: r.timeoutSec,
      metadata: r.metadata,
      allowInternetAccess: r.allowInternetAccess,
      createdAt: new Date(r.createdAt),
      envdAddress: live.network ? `${live.network.sandboxAddress}:${ENVD_PORT}` : "",
      ...(r.envdAccessToken !== undefined && { envdAccessToken: r.envdAccessToken }),
      autoPaused: r.autoPaused,
      ...(live.error !== undefined && { error: live.error }),
    };
  }
}

/** Where the agent reaches a sandbox's envd, with the token envd requires. */
function envdOf(live: Live): EnvdTarget {
  return {
    host: live.network!.sandboxAddress,
    port: ENVD_PORT,
    ...(live.record.envdAccessToken !== undefined && {
      accessToken: live.record.envdAccessToken,
    }),
  };
}

/** The disk gets a directory of its own beside sandbox.json. */
function storageDir(sandboxDir: string): string {
  return join(sandboxDir, "storage");
}

/** Sandboxes from a snapshot run with the snapshot's resources, whatever was asked. */
function lockedLimits(spec: SandboxSpec, template: TemplateInfo) {
  const limits = {
    vcpus: template.vcpus ?? (spec.vcpus || DEFAULT_LIMITS.vcpus),
    memoryMb: template.memoryMb ?? (spec.memoryMb || DEFAULT_LIMITS.memoryMb),
    diskSizeMb: template.diskSizeMb ?? (spec.diskSizeMb || DEFAULT_LIMITS.diskSizeMb),
  };
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new AgentError("invalid_argument", what);
  };
  check(
    Number.isInteger(limits.vcpus) && limits.vcpus <= availableParallelism(),
    `vcpus must be a whole number up to this host's ${availableParallelism()}`,
  );
  // envd itself (Node) needs about 40 MiB; below this a sandbox cannot even start.
  check(
    Number.isInteger(limits.memoryMb) && limits.memoryMb >= 64,
    "memory_mb must be at least 64",
  );
  check(
    Number.isInteger(limits.diskSizeMb) && limits.diskSizeMb >= 8,
    "disk_size_mb must be at least 8",
  );
  return limits;
}

/** For the primitives that return their failures instead of throwing them. */
async function throwAll(result: Promise<Error[]>): Promise<void> {
  const errors = await result;
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, errors.map((e) => e.message).join("; "));
}
