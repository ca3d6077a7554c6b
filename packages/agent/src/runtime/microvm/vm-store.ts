import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AgentError } from "../../errors.js";
import type { VmPaths } from "./qemu.js";

/** What a microVM snapshot holds beside its files (snake_case on disk, like templates). */
export interface VmSnapshotMeta {
  name: string;
  /** The base template whose image is at the bottom of the disk chain. */
  baseTemplate: string;
  sourceSandboxId: string;
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  createdAt: string;
  /** Made by the agent for a template (hidden from the snapshot list). */
  ready: boolean;
  /**
   * The token the snapshot's envd requires (in its memory): a template's own for a ready
   * snapshot, the source sandbox's for a user's. Each restore replaces it with a fresh one.
   */
  envdAccessToken?: string;
}

export function vmPaths(dir: string): VmPaths {
  return {
    disk: join(dir, "disk.qcow2"),
    ram: join(dir, "ram"),
    state: join(dir, "state"),
    qmp: join(dir, "qmp.sock"),
    pidFile: join(dir, "qemu.pid"),
    console: join(dir, "console.log"),
    env: join(dir, "env"),
  };
}

/**
 * `<agentDir>/microvm/`: the initramfs per kernel, one base image per template, and snapshots
 * (disk overlay + RAM + device state) by name; `ready-<template>-<vcpus>x<mb>x<disk mb>` ones are the
 * booted-once templates every create restores from.
 */
export class VmStore {
  readonly dir: string;

  constructor(agentDir: string) {
    this.dir = join(agentDir, "microvm");
  }

  imagePath(template: string): string {
    return join(this.dir, "images", `${template}.img`);
  }

  /** The templates that have an image. */
  async imageTemplates(): Promise<string[]> {
    const files = await readdir(join(this.dir, "images")).catch(() => [] as string[]);
    return files.filter((f) => f.endsWith(".img")).map((f) => f.slice(0, -".img".length));
  }

  snapshotDir(name: string): string {
    return join(this.dir, "snapshots", name);
  }

  /** The booted-once snapshot of a template for these limits (its disk size included). */
  readyName(template: string, l: { vcpus: number; memoryMb: number; diskSizeMb: number }): string {
    return `ready-${template}-${l.vcpus}x${l.memoryMb}x${l.diskSizeMb}`;
  }

  /** A directory to build a snapshot in, renamed into place by `commitSnapshot`. */
  async stagingDir(name: string): Promise<string> {
    const dir = join(this.dir, "snapshots", `.build-${name}-${process.pid}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  async commitSnapshot(staging: string, meta: VmSnapshotMeta): Promise<void> {
    // Root only: it holds the token every restore starts with.
    await writeFile(join(staging, "snapshot.json"), `${JSON.stringify(toJson(meta), null, 2)}\n`, {
      mode: 0o600,
    });
    try {
      await rename(staging, this.snapshotDir(meta.name));
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOTEMPTY" || code === "EEXIST") {
        throw new AgentError("already_exists", `snapshot ${meta.name} already exists`);
      }
      throw AgentError.from(err);
    }
  }

  async readSnapshot(name: string): Promise<VmSnapshotMeta | undefined> {
    try {
      const raw = JSON.parse(await readFile(join(this.snapshotDir(name), "snapshot.json"), "utf8"));
      return {
        name,
        baseTemplate: String(raw.base_template),
        sourceSandboxId: String(raw.source_sandbox_id ?? ""),
        vcpus: Number(raw.vcpus),
        memoryMb: Number(raw.memory_mb),
        diskSizeMb: Number(raw.disk_size_mb),
        createdAt: String(raw.created_at),
        ready: raw.ready === true,
        ...(typeof raw.envd_access_token === "string" && {
          envdAccessToken: raw.envd_access_token,
        }),
      };
    } catch {
      return undefined;
    }
  }

  async listSnapshots(): Promise<VmSnapshotMeta[]> {
    const names = await readdir(join(this.dir, "snapshots")).catch(() => [] as string[]);
    const metas = await Promise.all(
      names.filter((n) => !n.startsWith(".")).map((n) => this.readSnapshot(n)),
    );
    return metas.filter((m): m is VmSnapshotMeta => m !== undefined);
  }

  async snapshotSize(name: string): Promise<number> {
    let total = 0;
    for (const file of ["disk.qcow2", "ram", "state"]) {
      const s = await stat(join(this.snapshotDir(name), file)).catch(() => undefined);
      total += s ? s.blocks * 512 : 0;
    }
    return total;
  }

  async removeSnapshot(name: string): Promise<void> {
    await rm(this.snapshotDir(name), { recursive: true, force: true });
  }

  /** Half-built snapshots and images a crash left behind. */
  async removeDebris(): Promise<void> {
    for (const sub of ["snapshots", "images"]) {
      for (const name of await readdir(join(this.dir, sub)).catch(() => [] as string[])) {
        if (name.startsWith(".build-") || name.includes(".img.build-")) {
          await rm(join(this.dir, sub, name), { recursive: true, force: true });
        }
      }
    }
  }
}

function toJson(m: VmSnapshotMeta): Record<string, unknown> {
  return {
    base_template: m.baseTemplate,
    source_sandbox_id: m.sourceSandboxId,
    vcpus: m.vcpus,
    memory_mb: m.memoryMb,
    disk_size_mb: m.diskSizeMb,
    created_at: m.createdAt,
    ready: m.ready,
    envd_access_token: m.envdAccessToken,
  };
}
