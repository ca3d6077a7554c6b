import type { ConnectionOpts } from "../config/index.js";
import { NotFoundError, WrennError } from "../errors/index.js";
import {
  ApiClient,
  type RequestOpts,
  readNdjson,
  requestOpts,
  runCallback,
} from "../http/index.js";
import { readCopies } from "./copy.js";
import { parseDockerfile } from "./dockerfile.js";

/** How a start command is found ready: a port answering, a file existing, a command exiting 0. */
export type ReadyCheck = { port: number } | { file: string } | { cmd: string };

/** One step of a recipe as the server takes it (`POST /v1/templates/builds`). */
export type TemplateStep =
  | { type: "run"; cmd: string; user?: string }
  | { type: "apt_install"; packages: string[] }
  | { type: "pip_install"; packages: string[] }
  | { type: "npm_install"; packages: string[]; global?: boolean }
  | { type: "copy"; src: string; dest: string; user?: string; mode?: number }
  | { type: "env"; envs: Record<string, string> }
  | { type: "workdir"; path: string }
  | { type: "user"; name: string }
  | { type: "start"; cmd: string; ready?: ReadyCheck; ready_timeout_ms?: number };

/** A line of a build's log, as it streams. */
export type TemplateBuildEvent =
  | { type: "build"; build_id: string; name: string; steps: number }
  | { type: "step"; index: number; total: number; step: string; cached: boolean }
  | { type: "log"; index: number; stream: "stdout" | "stderr"; text: string }
  | { type: "step_done"; index: number; duration_ms: number }
  | { type: "info"; message: string }
  | { type: "done"; template: WireTemplate; duration_ms: number }
  | {
      type: "error";
      code: string;
      message: string;
      step?: number;
      exit_code?: number;
      output?: string;
    };

interface WireTemplate {
  id: string;
  name: string;
  version: number;
  base: string;
  size_bytes: number | null;
  vcpus: number;
  memory_mb: number;
  disk_size_mb: number;
  created_at: string;
  start_cmd: string | null;
}

/** A built template of the team: `Sandbox.create({ template: name })` starts its newest version. */
export interface TemplateInfo {
  templateId: string;
  name: string;
  version: number;
  /** The template or snapshot it was built from (its `FROM`). */
  base: string;
  /** Disk its own layers take on a host (its base not counted); absent when never measured. */
  sizeBytes?: number;
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  createdAt: Date;
  startCmd?: string;
}

function templateFromWire(t: WireTemplate): TemplateInfo {
  return {
    templateId: t.id,
    name: t.name,
    version: t.version,
    base: t.base,
    ...(t.size_bytes === null ? {} : { sizeBytes: t.size_bytes }),
    vcpus: t.vcpus,
    memoryMb: t.memory_mb,
    diskSizeMb: t.disk_size_mb,
    createdAt: new Date(t.created_at),
    ...(t.start_cmd ? { startCmd: t.start_cmd } : {}),
  };
}

/** A build that failed (a step's exit code and output), was cancelled, or whose start command never got ready. */
export class TemplateBuildError extends WrennError {
  static override readonly kind: string = "TemplateBuildError";
  /** The index of the failing step, when a step failed. */
  readonly step: number | undefined;
  readonly exitCode: number | undefined;
  /** The tail of the failing step's output. */
  readonly output: string | undefined;

  constructor(event: Extract<TemplateBuildEvent, { type: "error" }>) {
    super(event.message, { code: event.code });
    this.step = event.step;
    this.exitCode = event.exit_code;
    this.output = event.output;
  }
}

/** Options of {@link Template.build}. */
export interface TemplateBuildOpts extends ConnectionOpts, RequestOpts {
  name: string;
  cpuCount?: number;
  memoryMb?: number;
  diskSizeMb?: number;
  /** Every line of the build's log, as it happens (step starts, cached steps, output). */
  onLog?: (event: TemplateBuildEvent) => void;
}

/**
 * A template recipe, built up step by step and then built on the server with
 * {@link Template.build}. Each step that changes files becomes a cached layer: a rebuild redoes
 * only the steps from the first one that changed.
 *
 * @example
 * ```ts
 * const t = Template.fromTemplate("base").aptInstall(["jq"]).setStartCmd("python3 -m http.server 8000", { port: 8000 });
 * await Template.build(t, { name: "my-env", onLog: (e) => console.log(e) });
 * const sandbox = await Sandbox.create({ template: "my-env" });
 * ```
 */
export class Template {
  /** The recipe's steps, in order. */
  readonly steps: TemplateStep[] = [];

  private constructor(readonly from: { template: string } | { snapshot: string }) {}

  /** Starts from a base template (`base`) or one of the team's built templates. */
  static fromTemplate(name: string): Template {
    return new Template({ template: name });
  }

  /**
   * A recipe from a Dockerfile (the subset {@link parseDockerfile} takes); `COPY` sources are
   * read from `contextDir` (default: the current directory) when the build starts.
   */
  static fromDockerfile(
    text: string,
    opts: { contextDir?: string; buildArgs?: Record<string, string> } = {},
  ): Template {
    const parsed = parseDockerfile(text, opts.buildArgs ? { buildArgs: opts.buildArgs } : {});
    const template = new Template(parsed.from);
    const context = (opts.contextDir ?? ".").replace(/\/+$/, "");
    for (const step of parsed.steps) {
      template.push(step.type === "copy" ? { ...step, src: `${context}/${step.src}` } : step);
    }
    return template;
  }

  /** Starts from one of the team's snapshots. */
  static fromSnapshot(name: string): Template {
    return new Template({ snapshot: name });
  }

  aptInstall(packages: string[]): this {
    return this.push({ type: "apt_install", packages });
  }

  pipInstall(packages: string[]): this {
    return this.push({ type: "pip_install", packages });
  }

  /** npm packages, globally (as root) or into the working directory (as the current user). */
  npmInstall(packages: string[], opts: { global?: boolean } = {}): this {
    return this.push({ type: "npm_install", packages, ...(opts.global ? { global: true } : {}) });
  }

  /** A shell command; as the template's current user unless `user` is given. */
  runCmd(cmd: string, opts: { user?: string } = {}): this {
    return this.push({ type: "run", cmd, ...(opts.user ? { user: opts.user } : {}) });
  }

  /**
   * A local file or directory (read when the build starts) to `dest` in the template: a file
   * is written as `dest`, or into it under its own name when `dest` ends in `/`; a directory's
   * files go under `dest`. Each file keeps its local mode unless `mode` (`0o755`) is given.
   */
  copy(localPath: string, dest: string, opts: { user?: string; mode?: number } = {}): this {
    return this.push({
      type: "copy",
      src: localPath,
      dest,
      ...(opts.user ? { user: opts.user } : {}),
      ...(opts.mode === undefined ? {} : { mode: opts.mode }),
    });
  }

  /** Environment for later steps and for every process of the template's sandboxes. */
  setEnvs(envs: Record<string, string>): this {
    return this.push({ type: "env", envs });
  }

  setWorkdir(path: string): this {
    return this.push({ type: "workdir", path });
  }

  setUser(name: string): this {
    return this.push({ type: "user", name });
  }

  /**
   * A process the template keeps running: started in every sandbox of it before the sandbox is
   * handed out, once `ready` passes (a port answering, a file existing or a command exiting 0).
   */
  setStartCmd(cmd: string, ready?: ReadyCheck, opts: { readyTimeoutMs?: number } = {}): this {
    return this.push({
      type: "start",
      cmd,
      ...(ready ? { ready } : {}),
      ...(opts.readyTimeoutMs ? { ready_timeout_ms: opts.readyTimeoutMs } : {}),
    });
  }

  private push(step: TemplateStep): this {
    this.steps.push(step);
    return this;
  }

  /**
   * Builds `template` on the server as a new version of `opts.name` and resolves with it; the
   * log streams to `opts.onLog`. `opts.signal` cancels the build; a failed step throws
   * {@link TemplateBuildError} with its exit code and output.
   */
  static async build(template: Template, opts: TemplateBuildOpts): Promise<TemplateInfo> {
    const { steps, files } = await readCopies(template.steps);
    const client = await ApiClient.fromOptions(opts);
    const body = {
      name: opts.name,
      from: template.from,
      steps,
      ...(Object.keys(files).length > 0 ? { files } : {}),
      ...(opts.cpuCount ? { cpu_count: opts.cpuCount } : {}),
      ...(opts.memoryMb ? { memory_mb: opts.memoryMb } : {}),
      ...(opts.diskSizeMb ? { disk_size_mb: opts.diskSizeMb } : {}),
    };
    return client.send(
      {
        method: "POST",
        path: "/v1/templates/builds",
        json: body,
        headers: { accept: "application/x-ndjson" },
        defaultTimeoutMs: 0,
        ...requestOpts(opts),
      },
      async (res) => {
        for await (const line of res.body ? readNdjson(res.body) : []) {
          const event = line as TemplateBuildEvent;
          await runCallback(() => opts.onLog?.(event));
          if (event.type === "done") return templateFromWire(event.template);
          if (event.type === "error") throw new TemplateBuildError(event);
        }
        throw new WrennError("the build's log ended without a result", { code: "unavailable" });
      },
    );
  }

  /** The team's built templates, every version, oldest first. */
  static async list(opts: ConnectionOpts & RequestOpts = {}): Promise<TemplateInfo[]> {
    const client = await ApiClient.fromOptions(opts);
    const answer = await client.json<{ templates: WireTemplate[] }>({
      method: "GET",
      path: "/v1/templates",
      ...requestOpts(opts),
    });
    return answer.templates.map(templateFromWire);
  }

  /** Deletes every version of a template by name (or one version by id); false when there was none. */
  static async delete(name: string, opts: ConnectionOpts & RequestOpts = {}): Promise<boolean> {
    const client = await ApiClient.fromOptions(opts);
    try {
      await client.json({
        method: "DELETE",
        path: `/v1/templates/${encodeURIComponent(name)}`,
        ...requestOpts(opts),
      });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }
}
