import type { Readable } from "node:stream";
import { AgentError } from "../errors.js";
import type { NetworkPolicy } from "../network/index.js";
import type { TemplateStore } from "../template/index.js";
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
} from "./types.js";

/** A runtime of the set and how it runs on this host. */
export interface RuntimeEntry {
  runtime: Runtime;
  /** microvm: "kvm" or "tcg"; empty for namespace. */
  accel?: string;
  /** Finds out whether the runtime works here (resolves with its accel); run by prepare(). */
  probe?: () => Promise<string | undefined>;
  /** Asked for by name: a failing probe stops the start instead of dropping the runtime. */
  required?: boolean;
}

/**
 * The agent's runtimes behind one Runtime: creates go to the runtime asked for (the default
 * one otherwise), every other call to the runtime that holds the sandbox. Each runtime adopts
 * only its own records, so nothing here touches another runtime's sandboxes.
 */
export class RuntimeSet implements Runtime {
  readonly name: string;
  private entryList: RuntimeEntry[];

  constructor(entries: readonly RuntimeEntry[], defaultName: string) {
    if (!entries.some((e) => e.runtime.name === defaultName)) {
      throw new AgentError(
        "invalid_argument",
        `default runtime ${defaultName} is not among ${entries.map((e) => e.runtime.name).join(", ")}`,
      );
    }
    this.entryList = [...entries];
    this.name = defaultName;
  }

  get entries(): readonly RuntimeEntry[] {
    return this.entryList;
  }

  /**
   * Probes the runtimes: one that does not work here is dropped (with the reason returned), or
   * fails the start if it was asked for by name or is the default.
   */
  async prepare(): Promise<{ runtime: string; reason: string }[]> {
    const dropped: { runtime: string; reason: string }[] = [];
    for (const entry of [...this.entryList]) {
      if (!entry.probe) continue;
      try {
        entry.accel = await entry.probe();
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        if (entry.required || entry.runtime.name === this.name) {
          throw new AgentError(
            "failed_precondition",
            `runtime ${entry.runtime.name} does not work here: ${reason}`,
          );
        }
        this.entryList = this.entryList.filter((e) => e !== entry);
        dropped.push({ runtime: entry.runtime.name, reason });
      }
    }
    return dropped;
  }

  get names(): string[] {
    return this.entries.map((e) => e.runtime.name);
  }

  /** The runtime of this name, or invalid_argument naming the ones there are. */
  runtime(name: string): Runtime {
    const entry = this.entries.find((e) => e.runtime.name === name);
    if (!entry) {
      throw new AgentError(
        "invalid_argument",
        `runtime ${name} is not available on this host (available: ${this.names.join(", ")})`,
      );
    }
    return entry.runtime;
  }

  /** The runtime holding sandbox `id`; not_found if none does. */
  owner(id: string): Runtime {
    for (const { runtime } of this.entries) {
      try {
        runtime.get(id);
        return runtime;
      } catch (err) {
        if (!(err instanceof AgentError && err.code === "not_found")) throw err;
      }
    }
    throw new AgentError("not_found", `sandbox ${id} not found`);
  }

  async create(spec: SandboxSpec, options?: { signal?: AbortSignal }): Promise<SandboxInfo> {
    const runtime = this.runtime(spec.runtime || (await this.snapshotOwner(spec.template)));
    for (const other of this.entries) {
      if (other.runtime !== runtime && other.runtime.list().some((s) => s.id === spec.id)) {
        return Promise.reject(
          new AgentError("already_exists", `sandbox ${spec.id} already exists`),
        );
      }
    }
    return runtime.create(spec, options);
  }

  /** The runtime whose snapshot `template` names (a snapshot restores where it was made). */
  private async snapshotOwner(template: string): Promise<string> {
    for (const { runtime } of this.entries) {
      if ((await runtime.listSnapshots()).some((s) => s.name === template)) return runtime.name;
    }
    return this.name;
  }

  async destroy(id: string): Promise<void> {
    return this.owner(id).destroy(id);
  }

  async pause(id: string, options?: { auto?: boolean }): Promise<SandboxInfo> {
    return this.owner(id).pause(id, options);
  }

  async resume(id: string): Promise<SandboxInfo> {
    return this.owner(id).resume(id);
  }

  async setTimeout(id: string, timeoutSec: number): Promise<SandboxInfo> {
    return this.owner(id).setTimeout(id, timeoutSec);
  }

  async setNetwork(id: string, policy: NetworkPolicy): Promise<SandboxInfo> {
    return this.owner(id).setNetwork(id, policy);
  }

  get(id: string): SandboxInfo {
    return this.owner(id).get(id);
  }

  list(): SandboxInfo[] {
    return this.entries.flatMap((e) => e.runtime.list());
  }

  async metrics(id: string): Promise<SandboxMetrics> {
    return this.owner(id).metrics(id);
  }

  /** In the source's runtime, which must be able to fork. */
  async fork(id: string, targets: ForkTarget[]): Promise<ForkResult> {
    const runtime = this.owner(id);
    if (!runtime.fork) {
      throw new AgentError("failed_precondition", `runtime ${runtime.name} cannot fork sandboxes`);
    }
    for (const t of targets) {
      if (this.list().some((s) => s.id === t.id)) {
        throw new AgentError("already_exists", `sandbox ${t.id} already exists`);
      }
    }
    return runtime.fork(id, targets);
  }

  async snapshot(id: string, name: string): Promise<SnapshotInfo> {
    return this.owner(id).snapshot(id, name);
  }

  async deleteSnapshot(name: string): Promise<void> {
    for (const { runtime } of this.entries) {
      if ((await runtime.listSnapshots()).some((s) => s.name === name)) {
        return runtime.deleteSnapshot(name);
      }
    }
    // The default runtime says why (not found, or a template rather than a snapshot).
    return this.runtime(this.name).deleteSnapshot(name);
  }

  /**
   * The template store the runtimes share (the namespace runtime's): what a single-host server
   * prepares its default template in before it says it is ready.
   */
  get templateStore(): TemplateStore | undefined {
    for (const { runtime } of this.entries) {
      const store = (runtime as { templateStore?: TemplateStore }).templateStore;
      if (store) return store;
    }
    return undefined;
  }

  /** The runtimes share one address pool: its range is the agent's. */
  get sandboxCidr(): string | undefined {
    return this.entries.find((e) => e.runtime.sandboxCidr)?.runtime.sandboxCidr;
  }

  /** From the runtime that holds the snapshot (not_found when none can export it). */
  async exportSnapshot(name: string): Promise<{ info: SnapshotInfo; archive: Readable }> {
    for (const { runtime } of this.entries) {
      if (!runtime.exportSnapshot) continue;
      if ((await runtime.listSnapshots()).some((s) => s.name === name)) {
        return runtime.exportSnapshot(name);
      }
    }
    throw new AgentError("not_found", `snapshot ${name} not found on this host (or not movable)`);
  }

  /** Into the first runtime that can import snapshots (today: namespace). */
  async importSnapshot(
    name: string,
    archive: Readable,
    meta: { sourceSandboxId: string },
  ): Promise<SnapshotInfo> {
    const runtime = this.entries.find((e) => e.runtime.importSnapshot)?.runtime;
    if (!runtime?.importSnapshot) {
      throw new AgentError("failed_precondition", "no runtime here can import snapshots");
    }
    return runtime.importSnapshot(name, archive, meta);
  }

  async listSnapshots(): Promise<SnapshotInfo[]> {
    return (await Promise.all(this.entries.map((e) => e.runtime.listSnapshots()))).flat();
  }

  /** The default runtime's templates (see templatesByRuntime for all). */
  templates(): Promise<TemplateSummary[]> {
    return this.runtime(this.name).templates();
  }

  async templatesByRuntime(): Promise<{ runtime: string; templates: TemplateSummary[] }[]> {
    return Promise.all(
      this.entries.map(async (e) => ({
        runtime: e.runtime.name,
        templates: await e.runtime.templates(),
      })),
    );
  }

  /** One runtime after another (they share the state directory and the address pool). */
  async adopt(): Promise<AdoptReport> {
    const report: AdoptReport = { adopted: [], cleaned: [], errors: [] };
    for (const { runtime } of this.entries) {
      const part = await runtime.adopt();
      report.adopted.push(...part.adopted);
      report.cleaned.push(...part.cleaned);
      report.errors.push(...part.errors);
    }
    return report;
  }

  async close(): Promise<void> {
    const results = await Promise.allSettled(this.entries.map((e) => e.runtime.close()));
    const errors = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
    if (errors.length > 0) throw new AggregateError(errors, "closing the runtimes failed");
  }
}
