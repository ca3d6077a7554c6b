import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { AgentError } from "../errors.js";
import { tarStream, untar } from "./archive.js";
import { buildCodeInterpreter } from "./code-interpreter/index.js";
import { buildDebianBase } from "./debian-base.js";
import { buildMinimalRootfs } from "./minimal.js";
import { run } from "./run.js";
import { assertSafeName } from "./safe-name.js";
import type { BuildContext, ProgressFn, TemplateInfo } from "./types.js";

type Builder = (root: string, ctx: BuildContext) => Promise<void>;

/** Base templates the agent can build on demand. */
const BUILDERS: Record<string, Builder> = {
  base: buildDebianBase,
  "code-interpreter": buildCodeInterpreter,
  "test-minimal": buildMinimalRootfs,
};

export const BUILTIN_TEMPLATES: readonly string[] = Object.keys(BUILDERS);

const TEMPLATE_JSON = "template.json";
// Work-in-progress and deleted directories: names no SafeName can take (leading dot).
const BUILD_PREFIX = ".build-";
const TRASH_PREFIX = ".trash-";

/** template.json on disk (snake_case, like the rest of Wrenn's stored data). */
interface TemplateJson {
  name: string;
  kind: "base" | "snapshot";
  layers: string[];
  created_at: string;
  size_bytes: number;
  vcpus?: number;
  memory_mb?: number;
  disk_size_mb?: number;
}

export interface TemplateStoreOptions {
  /** The agent's state directory; templates live in `<agentDir>/templates/<name>/`. */
  agentDir: string;
  logger?: Logger;
  /** Told when a built-in base template has been built (a warm pool can fill from it now). */
  onBuilt?: (info: TemplateInfo) => void;
}

export interface EnsureTemplateOptions {
  /** Progress lines while a base template builds (debootstrap's output for `base`). */
  onProgress?: ProgressFn;
}

export interface WriteSnapshotOptions {
  name: string;
  /** The template the sandbox was created from; the snapshot stacks on its layers. */
  parent: string;
  /** The directory to freeze (a sandbox's overlay upper dir); copied with xattrs and whiteouts. */
  fromDir: string;
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
}

/**
 * Templates: read-only root filesystems sandboxes start from, each `<name>/rootfs` plus
 * `<name>/template.json`. Every new template is assembled in a hidden directory beside its
 * final place and renamed into it, so a template either exists whole or not at all.
 */
export class TemplateStore {
  readonly dir: string;
  private readonly logger: Logger | undefined;
  private readonly builds = new Map<string, Promise<TemplateInfo>>();
  private readonly onBuilt: ((info: TemplateInfo) => void) | undefined;
  private readonly deleteListeners = new Set<(name: string) => void>();

  constructor(opts: TemplateStoreOptions) {
    this.dir = join(opts.agentDir, "templates");
    this.logger = opts.logger;
    this.onBuilt = opts.onBuilt;
  }

  /**
   * Tells `listener` the name of every template deleted from now on (a runtime drops what it
   * made from it, e.g. a microVM image). Returns the function that stops telling it.
   */
  onDeleted(listener: (name: string) => void): () => void {
    this.deleteListeners.add(listener);
    return () => this.deleteListeners.delete(listener);
  }

  /** The read-only rootfs directory of a template. */
  rootfsDir(name: string): string {
    assertSafeName(name, "template name");
    return join(this.dir, name, "rootfs");
  }

  /** Returns the template, building it first if it is a built-in base not built yet. */
  async ensureTemplate(name: string, opts: EnsureTemplateOptions = {}): Promise<TemplateInfo> {
    assertSafeName(name, "template name");
    const inFlight = this.builds.get(name);
    if (inFlight) return inFlight;
    const build = this.getTemplate(name).catch((err: unknown) => {
      if (!(err instanceof AgentError && err.code === "not_found" && name in BUILDERS)) throw err;
      return this.build(name, BUILDERS[name]!, opts.onProgress);
    });
    this.builds.set(name, build);
    const forget = () => this.builds.delete(name);
    build.then(forget, forget);
    return build;
  }

  async getTemplate(name: string): Promise<TemplateInfo> {
    assertSafeName(name, "template name");
    let text: string;
    try {
      text = await readFile(join(this.dir, name, TEMPLATE_JSON), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new AgentError("not_found", `template ${name} not found`);
      }
      throw AgentError.from(err);
    }
    return fromJson(name, text);
  }

  async listTemplates(): Promise<TemplateInfo[]> {
    const names = (await readdir(this.dir).catch(() => [])).filter((n) => !n.startsWith("."));
    const out: TemplateInfo[] = [];
    for (const name of names.sort()) {
      try {
        out.push(await this.getTemplate(name));
      } catch (err) {
        this.logger?.warn({ err, template: name }, "skipping unreadable template");
      }
    }
    return out;
  }

  /** The rootfs directories to stack (overlay lowerdir order: top first). */
  async templateLayers(name: string): Promise<string[]> {
    const info = await this.getTemplate(name);
    return info.layers.map((layer) => this.rootfsDir(layer));
  }

  /** Freezes a directory into a new snapshot template stacked on `parent`. */
  async writeSnapshotTemplate(opts: WriteSnapshotOptions): Promise<TemplateInfo> {
    assertSafeName(opts.name, "snapshot name");
    const parent = await this.getTemplate(opts.parent);
    await this.assertAbsent(opts.name);
    return this.assemble(opts.name, async (rootfs) => {
      await mkdir(rootfs);
      // cp -a keeps owners, modes, xattrs (overlay's opaque markers) and whiteout devices.
      await run("cp", ["-a", "--reflink=auto", `${opts.fromDir}/.`, rootfs]);
      return {
        kind: "snapshot",
        layers: [opts.name, ...parent.layers],
        vcpus: opts.vcpus,
        memoryMb: opts.memoryMb,
        diskSizeMb: opts.diskSizeMb,
      };
    });
  }

  /** A tar stream of a template: its `template.json` and `rootfs/` (snapshot transfer). */
  async exportTemplate(name: string): Promise<{ info: TemplateInfo; archive: Readable }> {
    const info = await this.getTemplate(name);
    return { info, archive: tarStream(join(this.dir, name), [TEMPLATE_JSON, "rootfs"]) };
  }

  /**
   * Installs a snapshot template from an {@link exportTemplate} stream: extracted into a hidden
   * directory and renamed into place only once complete (a broken stream leaves nothing). The
   * layers it stacks on must be here already or be buildable bases (built first).
   */
  async importSnapshotTemplate(name: string, archive: Readable): Promise<TemplateInfo> {
    assertSafeName(name, "snapshot name");
    await this.assertAbsent(name);
    return this.assemble(name, async (rootfs) => {
      const work = dirname(rootfs);
      await untar(archive, work, [TEMPLATE_JSON, "rootfs"]);
      const text = await readFile(join(work, TEMPLATE_JSON), "utf8").catch(() => "");
      let held: unknown;
      try {
        held = (JSON.parse(text) as { name?: unknown }).name;
      } catch {
        throw new AgentError(
          "invalid_argument",
          `the archive of ${name} lacks a whole ${TEMPLATE_JSON}`,
        );
      }
      if (held !== name) {
        throw new AgentError(
          "invalid_argument",
          `the archive holds snapshot ${JSON.stringify(held)}, not ${name}`,
        );
      }
      const info = fromJson(name, text);
      if (info.kind !== "snapshot") {
        throw new AgentError("invalid_argument", `the archive of ${name} is not a snapshot`);
      }
      await stat(rootfs).catch(() => {
        throw new AgentError("invalid_argument", `the archive of ${name} has no rootfs`);
      });
      for (const layer of info.layers.slice(1)) {
        await this.ensureTemplate(layer).catch((err: unknown) => {
          throw new AgentError(
            "failed_precondition",
            `snapshot ${name} stacks on ${layer}, which this host lacks: ${AgentError.from(err).message}`,
          );
        });
      }
      // Name, time and size are this host's: assemble sets them.
      const { name: _name, createdAt: _createdAt, sizeBytes: _sizeBytes, ...rest } = info;
      return rest;
    });
  }

  /**
   * Deletes a snapshot template. Base templates and layers other templates stack on are
   * refused (failed_precondition); whether sandboxes still use it is the runtime's check.
   */
  async deleteTemplate(name: string): Promise<void> {
    const info = await this.getTemplate(name);
    if (info.kind === "base") {
      throw new AgentError("failed_precondition", `template ${name} is a base template`);
    }
    const users = (await this.listTemplates()).filter(
      (t) => t.name !== name && t.layers.includes(name),
    );
    if (users.length > 0) {
      throw new AgentError(
        "failed_precondition",
        `template ${name} is a layer of ${users.map((t) => t.name).join(", ")}`,
      );
    }
    const trash = join(this.dir, `${TRASH_PREFIX}${name}-${randomBytes(4).toString("hex")}`);
    await rename(join(this.dir, name), trash);
    await removeTree(trash);
    this.logger?.info({ template: name }, "template deleted");
    for (const listener of this.deleteListeners) listener(name);
  }

  /** Removes what interrupted builds and deletions left behind (call at agent start). */
  async removeDebris(): Promise<void> {
    for (const entry of await readdir(this.dir).catch(() => [])) {
      if (entry.startsWith(BUILD_PREFIX) || entry.startsWith(TRASH_PREFIX)) {
        this.logger?.info({ dir: entry }, "removing template debris");
        await removeTree(join(this.dir, entry));
      }
    }
  }

  private async build(name: string, builder: Builder, onProgress?: ProgressFn) {
    const started = Date.now();
    const progress: ProgressFn = (message) => {
      this.logger?.info({ template: name, progress: message }, "template build");
      onProgress?.(message);
    };
    const info = await this.assemble(name, async (rootfs) => {
      await builder(rootfs, { progress });
      return { kind: "base", layers: [name] };
    });
    this.logger?.info(
      { template: name, durationMs: Date.now() - started, sizeBytes: info.sizeBytes },
      "template built",
    );
    this.onBuilt?.(info);
    return info;
  }

  /** Fills `<hidden>/rootfs`, writes template.json, renames into place. */
  private async assemble(
    name: string,
    fill: (rootfs: string) => Promise<Omit<TemplateInfo, "name" | "createdAt" | "sizeBytes">>,
  ): Promise<TemplateInfo> {
    await mkdir(this.dir, { recursive: true });
    const work = join(this.dir, `${BUILD_PREFIX}${name}-${randomBytes(4).toString("hex")}`);
    await mkdir(work);
    try {
      const rootfs = join(work, "rootfs");
      const partial = await fill(rootfs);
      const info: TemplateInfo = {
        name,
        ...partial,
        createdAt: new Date().toISOString(),
        sizeBytes: await allocatedBytes(rootfs),
      };
      await writeFile(join(work, TEMPLATE_JSON), `${JSON.stringify(toJson(info), null, 2)}\n`);
      await this.assertAbsent(name);
      await rename(work, join(this.dir, name));
      return info;
    } catch (err) {
      await removeTree(work).catch((cleanupErr) =>
        this.logger?.error({ err: cleanupErr, dir: work }, "cannot remove failed template build"),
      );
      throw err;
    }
  }

  private async assertAbsent(name: string): Promise<void> {
    const exists = await stat(join(this.dir, name)).then(
      () => true,
      () => false,
    );
    if (exists) throw new AgentError("already_exists", `template ${name} already exists`);
  }
}

/**
 * rm -rf that never crosses into a mount: an interrupted debootstrap can leave /proc or /sys
 * mounted inside its target, and those must be unmounted, never emptied.
 */
async function removeTree(dir: string): Promise<void> {
  const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => !!point && point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) await run("umount", ["--lazy", point]);
  await run("rm", ["-rf", "--one-file-system", dir]);
}

async function allocatedBytes(dir: string): Promise<number> {
  const out = await run("du", ["-s", "--block-size=1", "--one-file-system", dir]);
  return Number(out.split(/\s/)[0]);
}

function toJson(info: TemplateInfo): TemplateJson {
  return {
    name: info.name,
    kind: info.kind,
    layers: info.layers,
    created_at: info.createdAt,
    size_bytes: info.sizeBytes,
    ...(info.vcpus !== undefined && { vcpus: info.vcpus }),
    ...(info.memoryMb !== undefined && { memory_mb: info.memoryMb }),
    ...(info.diskSizeMb !== undefined && { disk_size_mb: info.diskSizeMb }),
  };
}

function fromJson(name: string, text: string): TemplateInfo {
  const bad = (why: string) => new AgentError("internal", `template ${name}: ${why}`);
  let raw: Partial<TemplateJson>;
  try {
    raw = JSON.parse(text) as Partial<TemplateJson>;
  } catch (err) {
    throw new AgentError("internal", `template ${name}: unreadable template.json`, { cause: err });
  }
  if (raw.name !== name) throw bad("name does not match its directory");
  if (raw.kind !== "base" && raw.kind !== "snapshot") throw bad("unknown kind");
  if (!Array.isArray(raw.layers) || raw.layers[0] !== name) throw bad("bad layers");
  // Layers become paths: the same allowlist guards them as any name from a client.
  for (const layer of raw.layers) assertSafeName(String(layer), "layer name");
  if (typeof raw.created_at !== "string" || typeof raw.size_bytes !== "number") {
    throw bad("missing created_at or size_bytes");
  }
  return {
    name,
    kind: raw.kind,
    layers: raw.layers,
    createdAt: raw.created_at,
    sizeBytes: raw.size_bytes,
    ...(raw.vcpus !== undefined && { vcpus: raw.vcpus }),
    ...(raw.memory_mb !== undefined && { memoryMb: raw.memory_mb }),
    ...(raw.disk_size_mb !== undefined && { diskSizeMb: raw.disk_size_mb }),
  };
}
