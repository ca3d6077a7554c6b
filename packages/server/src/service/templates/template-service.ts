import type { Logger } from "pino";
import {
  BUILD_MARK,
  isId,
  newId,
  type SandboxRecord,
  type Store,
  type TemplateRow,
} from "../../db/index.js";
import { ServerError } from "../../errors.js";
import { elapsed } from "../elapsed.js";
import type { FileService } from "../files.js";
import { isSafeName } from "../names.js";
import type { ProcessService } from "../processes.js";
import type { SandboxService } from "../sandboxes.js";
import type { SnapshotService } from "../snapshots.js";
import { type BuildEvent, BuildFailure, type BuiltTemplate } from "./events.js";
import type { LayerCache, LayerHolds } from "./layer-cache.js";
import {
  checkRecipe,
  describeStep,
  isContextStep,
  layerKey,
  type Recipe,
  type StepContext,
  type TemplateConfig,
} from "./recipe.js";
import { applyContext, StepRunner } from "./step-runner.js";

/** `name@v3`: an older version of a built template, kept while sandboxes may use it. */
const versionName = (name: string, version: number) => `${name}@v${version}`;

interface RunningBuild {
  teamId: string;
  abort: AbortController;
}

/** Where a build starts: the sandbox template to create from and the key its layers chain on. */
interface Parent {
  template: string;
  key: string;
  config: TemplateConfig | undefined;
}

/**
 * A built template as clients see it; `layers` are the team's build layers by id, to add up its
 * size: its own row and the layers below it, down to what it was built from (not counted).
 */
function builtTemplateView(row: TemplateRow, layers: Map<string, TemplateRow>): BuiltTemplate {
  const config = row.config ? (JSON.parse(row.config) as TemplateConfig) : undefined;
  return {
    id: row.id,
    name: row.name.replace(/@v\d+$/, ""),
    version: row.version,
    base: row.baseTemplate,
    size_bytes: sizeBytesOf(row, layers),
    vcpus: row.vcpus,
    memory_mb: row.memoryMb,
    disk_size_mb: row.diskSizeMb,
    created_at: row.createdAt,
    start_cmd: config?.start?.cmd ?? null,
  };
}

/** KiB of `row` and of the build layers it stacks on, as bytes; null when one was never measured. */
function sizeBytesOf(row: TemplateRow, layers: Map<string, TemplateRow>): number | null {
  let kib = 0;
  const seen = new Set<string>();
  for (let at: TemplateRow | undefined = row; at && !seen.has(at.id); ) {
    if (at.sizeKib === null) return null;
    kib += at.sizeKib;
    seen.add(at.id);
    at = at.parentId ? layers.get(at.parentId) : undefined;
  }
  return kib * 1024;
}

/**
 * Templates built from a recipe. Each step that changes the filesystem runs in a build sandbox
 * and is frozen into a layer (a snapshot row of kind `layer`) keyed by its parent, the step and
 * its inputs, so a rebuild redoes only the steps from the first changed one. The last layer gets
 * the template's config (/etc/wrenn/start.json and defaults.json) and becomes the next version
 * of the name; a failed or cancelled build leaves only its good cached layers. The cache is
 * bounded ({@link LayerCache}).
 */
export class TemplateService {
  private readonly builds = new Map<string, RunningBuild>();
  private readonly steps: StepRunner;

  constructor(
    private readonly store: Store,
    private readonly sandboxes: SandboxService,
    processes: ProcessService,
    files: FileService,
    private readonly snapshots: SnapshotService,
    private readonly layers: LayerCache,
    private readonly logger: Logger,
  ) {
    this.steps = new StepRunner(processes, files);
  }

  /** Checks a recipe and finds its parent before the log stream opens: a bad one is a plain 4xx. */
  async validate(teamId: string, recipe: Recipe): Promise<void> {
    this.checkNames(recipe);
    // Its promotion would refuse it, but only once every step had run.
    if (await this.store.templates.getByName(teamId, recipe.name, "snapshot")) {
      throw new ServerError(
        "already_exists",
        `${JSON.stringify(recipe.name)} is a snapshot of the team, not a template`,
      );
    }
    await this.parentOf(teamId, recipe);
  }

  private checkNames(recipe: Recipe): void {
    if (!isSafeName(recipe.name)) {
      throw new ServerError(
        "invalid_argument",
        "name: letters, digits, '.', '_' and '-', at most 64, not starting with '.'",
      );
    }
    checkRecipe(recipe);
  }

  /** Runs a build, reporting every step to `emit`; the last event is `done` or `error`. */
  async build(
    teamId: string,
    recipe: Recipe,
    emit: (event: BuildEvent) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    this.checkNames(recipe);
    const started = performance.now();
    const buildId = newId();
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.builds.set(buildId, { teamId, abort });
    emit({ type: "build", build_id: buildId, name: recipe.name, steps: recipe.steps.length });
    let sandbox: SandboxRecord | undefined;
    let made: TemplateRow | undefined;
    // The layers this build stands on or made: held from the cache's evictions until it ends.
    const holds: LayerHolds = new Set();
    const used: string[] = [];
    try {
      const parent = await this.parentOf(teamId, recipe);
      let template = parent.template;
      let key = parent.key;
      const defaults = parent.config?.defaults;
      const ctx: StepContext = {
        envs: { ...defaults?.envs },
        workdir: defaults?.workdir,
        user: defaults?.user ?? "user",
      };
      let start: TemplateConfig["start"] = parent.config?.start;
      const total = recipe.steps.length;
      for (const [index, step] of recipe.steps.entries()) {
        abort.signal.throwIfAborted();
        if (isContextStep(step)) {
          emit({ type: "step", index, total, step: describeStep(step), cached: false });
          start = applyContext(step, ctx) ?? start;
          continue;
        }
        const stepKey = layerKey(key, step, ctx);
        const cached = sandbox ? undefined : await this.layers.claim(teamId, stepKey, holds);
        emit({
          type: "step",
          index,
          total,
          step: describeStep(step),
          cached: cached !== undefined,
        });
        if (cached) {
          used.push(cached.id);
          template = cached.id;
          key = stepKey;
          continue;
        }
        const stepStarted = performance.now();
        sandbox ??= await this.buildSandbox(teamId, template, recipe, emit, abort.signal);
        await this.steps.run(teamId, sandbox.id, recipe, step, index, ctx, emit, abort.signal);
        abort.signal.throwIfAborted();
        const layer = await this.snapshots
          .capture(teamId, sandbox, {
            name: `layer-${stepKey.slice(0, 48)}`,
            kind: "layer",
            cacheKey: stepKey,
          })
          .catch((err: unknown) => {
            // Another build made the same layer meanwhile: the same content, so theirs serves.
            if (!(err instanceof ServerError && err.code === "already_exists")) throw err;
          });
        if (layer) {
          this.layers.hold(layer.id, holds);
          used.push(layer.id);
        }
        key = stepKey;
        emit({ type: "step_done", index, duration_ms: Math.round(elapsed(stepStarted)) });
      }
      abort.signal.throwIfAborted();
      const config: TemplateConfig = {
        ...(start ? { start } : {}),
        defaults: {
          user: ctx.user,
          envs: ctx.envs,
          ...(ctx.workdir ? { workdir: ctx.workdir } : {}),
        },
      };
      emit({ type: "info", message: "writing the template's config" });
      sandbox ??= await this.buildSandbox(teamId, template, recipe, emit, abort.signal);
      await this.steps.writeConfig(teamId, sandbox.id, config);
      made = await this.snapshots.capture(teamId, sandbox, {
        name: `${recipe.name}${BUILD_MARK}${buildId}`,
        kind: "template",
        version: 0,
        config: JSON.stringify(config),
        baseTemplate: "snapshot" in recipe.from ? recipe.from.snapshot : recipe.from.template,
        buildLayers: JSON.stringify(used),
      });
      await this.sandboxes.destroy(teamId, sandbox.id).catch(() => {});
      sandbox = undefined;
      if (start) {
        abort.signal.throwIfAborted();
        emit({ type: "info", message: "checking the start command: a sandbox from the template" });
        await this.checkStart(teamId, made, abort.signal);
      }
      abort.signal.throwIfAborted();
      const row = await this.promote(teamId, recipe.name, made);
      made = undefined;
      const ms = Math.round(elapsed(started));
      this.logger.info(
        {
          op: "template.build",
          teamId,
          templateId: row.id,
          name: recipe.name,
          version: row.version,
          ms,
        },
        "template built",
      );
      emit({ type: "done", template: await this.view(teamId, row), duration_ms: ms });
    } catch (err) {
      const failure = abort.signal.aborted
        ? new BuildFailure("cancelled", "the build was cancelled")
        : err instanceof BuildFailure
          ? err
          : new BuildFailure(ServerError.from(err).code, ServerError.from(err).message);
      this.logger.warn(
        { op: "template.build", teamId, name: recipe.name, buildId, err, ms: elapsed(started) },
        "template build failed",
      );
      emit({
        type: "error",
        code: failure.code,
        message: failure.message,
        ...(failure.step === undefined ? {} : { step: failure.step }),
        ...(failure.exitCode === undefined ? {} : { exit_code: failure.exitCode }),
        ...(failure.output === undefined ? {} : { output: failure.output }),
      });
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.builds.delete(buildId);
      if (sandbox) await this.sandboxes.destroy(teamId, sandbox.id).catch(() => {});
      if (made) await this.snapshots.remove(made).catch(() => {});
      this.layers.release(holds);
      await this.layers
        .trim()
        .catch((err: unknown) =>
          this.logger.warn({ op: "template.layer-evict", err }, "layer cache trim failed"),
        );
    }
  }

  /** Cancels a running build of the team; not_found when there is none by that id. */
  cancel(teamId: string, buildId: string): void {
    const build = this.builds.get(buildId);
    if (!build || build.teamId !== teamId) {
      throw new ServerError("not_found", `build ${JSON.stringify(buildId)} not found or finished`);
    }
    build.abort.abort();
  }

  /** The team's built templates, every version, oldest first; not builds still under way. */
  async list(teamId: string): Promise<TemplateRow[]> {
    const rows = await this.store.templates.list(teamId, "template");
    return rows.filter((row) => !row.name.includes(BUILD_MARK));
  }

  /** {@link list} as clients see it, with each version's base and size. */
  async views(teamId: string): Promise<BuiltTemplate[]> {
    const [rows, layers] = await Promise.all([this.list(teamId), this.layersById(teamId)]);
    return rows.map((row) => builtTemplateView(row, layers));
  }

  private async view(teamId: string, row: TemplateRow): Promise<BuiltTemplate> {
    return builtTemplateView(row, await this.layersById(teamId));
  }

  private async layersById(teamId: string): Promise<Map<string, TemplateRow>> {
    const layers = await this.store.templates.list(teamId, "layer");
    return new Map(layers.map((l) => [l.id, l]));
  }

  /** A built template by name (every version) or one version by id. */
  async delete(teamId: string, idOrName: string): Promise<void> {
    // A name may look like an id: by id first, then by name.
    const byId = isId(idOrName) ? await this.store.templates.get(teamId, idOrName) : undefined;
    const found =
      byId?.kind === "template"
        ? [byId]
        : (await this.list(teamId)).filter(
            (r) => r.name === idOrName || r.name.startsWith(`${idOrName}@v`),
          );
    if (found.length === 0) {
      throw new ServerError("not_found", `template ${JSON.stringify(idOrName)} not found`);
    }
    await this.snapshots.removeWhole(found);
    await this.layers.dropLayersOf(teamId, found);
  }

  /** The sandbox template a build starts from: a team template or snapshot, or a base template. */
  private async parentOf(teamId: string, recipe: Recipe): Promise<Parent> {
    if ("snapshot" in recipe.from) {
      const row = await this.store.templates.getByName(teamId, recipe.from.snapshot, "snapshot");
      if (!row)
        throw new ServerError(
          "not_found",
          `snapshot ${JSON.stringify(recipe.from.snapshot)} not found`,
        );
      return { template: row.id, key: `row:${row.id}`, config: undefined };
    }
    const name = recipe.from.template;
    const row = await this.store.templates.getByName(teamId, name, "template");
    if (row) {
      const config = row.config ? (JSON.parse(row.config) as TemplateConfig) : undefined;
      return { template: row.id, key: `row:${row.id}`, config };
    }
    if (isId(name))
      throw new ServerError("not_found", `template ${JSON.stringify(name)} not found`);
    return { template: name, key: `base:${name}`, config: undefined };
  }

  private async buildSandbox(
    teamId: string,
    template: string,
    recipe: Recipe,
    emit: (event: BuildEvent) => void,
    signal: AbortSignal,
  ): Promise<SandboxRecord> {
    emit({ type: "info", message: "starting a build sandbox" });
    // A cancel ends its create too: one from a template with a start command waits for it.
    return this.sandboxes.create(
      teamId,
      {
        template,
        ...(recipe.vcpus ? { vcpus: recipe.vcpus } : {}),
        ...(recipe.memoryMb ? { memoryMb: recipe.memoryMb } : {}),
        ...(recipe.diskSizeMb ? { diskSizeMb: recipe.diskSizeMb } : {}),
        metadata: { "wrenn.template-build": recipe.name },
      },
      { signal },
    );
  }

  /**
   * Starts a sandbox of the new template: its create waits for the start command's ready check
   * (up to its ready timeout), unless the build is cancelled meanwhile.
   */
  private async checkStart(teamId: string, row: TemplateRow, signal: AbortSignal): Promise<void> {
    let probe: SandboxRecord | undefined;
    try {
      probe = await this.sandboxes.create(
        teamId,
        { template: row.id, metadata: { "wrenn.template-check": row.id } },
        { signal },
      );
    } catch (err) {
      const e = ServerError.from(err);
      throw new BuildFailure(
        "start_failed",
        `the start command did not become ready: ${e.message}`,
      );
    } finally {
      if (probe) await this.sandboxes.destroy(teamId, probe.id).catch(() => {});
    }
  }

  /** Makes `made` the newest version of `name`; the version before it is kept as `name@vN`. */
  private async promote(teamId: string, name: string, made: TemplateRow): Promise<TemplateRow> {
    return this.store.transaction(async (tx) => {
      const current = await tx.templates.getByName(teamId, name);
      if (current && current.kind !== "template") {
        throw new ServerError(
          "already_exists",
          `${JSON.stringify(name)} is a snapshot of the team, not a template`,
        );
      }
      const versions = (await tx.templates.list(teamId, "template")).filter(
        (r) => r.name === name || r.name.startsWith(`${name}@v`),
      );
      const version = Math.max(0, ...versions.map((r) => r.version)) + 1;
      if (current)
        await tx.templates.rename(teamId, current.id, versionName(name, current.version));
      await tx.templates.promote(teamId, made.id, name, version);
      return { ...made, name, version };
    });
  }
}
