import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { AgentError } from "../../errors.js";
import { runCommand } from "../../host/index.js";
import { StepTimer } from "../../logger/index.js";
import type { SandboxRecord } from "../../state/index.js";
import { assertSafeName, type TemplateInfo } from "../../template/index.js";
import { serialize } from "../sandbox-table.js";
import type { SnapshotInfo } from "../types.js";
import { buildBaseImage } from "./guest-image.js";
import type { VmLive, VmParts } from "./parts.js";
import { QmpClient } from "./qmp.js";
import { buildVm, newEnvdToken, teardownVm } from "./vm-assembly.js";
import { type VmSnapshotMeta, vmPaths } from "./vm-store.js";

/** Builds of base images and ready snapshots under way, so concurrent creates share one. */
const building = new Map<string, Promise<unknown>>();

function once<T>(key: string, work: () => Promise<T>): Promise<T> {
  let run = building.get(key) as Promise<T> | undefined;
  if (!run) {
    run = work().finally(() => building.delete(key));
    building.set(key, run);
  }
  return run;
}

/** The template's ext4 base image, built once. */
export function ensureImage(vp: VmParts, template: TemplateInfo): Promise<string> {
  const image = vp.store.imagePath(template.name);
  if (existsSync(image)) return Promise.resolve(image);
  return once(image, async () => {
    await mkdir(dirname(image), { recursive: true, mode: 0o700 });
    const started = Date.now();
    await buildBaseImage({
      image,
      layerDirs: template.layers.map((layer) => vp.templateStore.rootfsDir(layer)),
      envdDir: vp.opts.envdDir,
    });
    vp.logger.info({ template: template.name, ms: Date.now() - started }, "microVM image built");
    return image;
  });
}

/**
 * The template booted once with these vCPUs and RAM, envd warmed up, and snapshotted: every
 * create restores it instead of booting. Made by a hidden sandbox that is destroyed after.
 * envd answers /health only once the template's start command (/etc/wrenn/start.json) passed
 * its ready check, and the boot waits for that answer: the snapshot holds the command running
 * and ready, so no create starts it again. One that fails or is not ready within its
 * readyTimeout fails the create with the command's output.
 */
export function ensureReady(
  vp: VmParts,
  template: TemplateInfo,
  limits: { vcpus: number; memoryMb: number; diskSizeMb: number },
): Promise<VmSnapshotMeta> {
  const name = vp.store.readyName(template.name, limits);
  return once(name, async () => {
    const existing = await vp.store.readSnapshot(name);
    if (existing) return existing;
    const image = await ensureImage(vp, template);
    const resourceId = `ready-${randomBytes(6).toString("hex")}`;
    const record: SandboxRecord = {
      id: resourceId,
      resourceId,
      pooled: true,
      runtime: vp.name,
      phase: "creating",
      template: template.name,
      layers: [template.name],
      ...limits,
      timeoutSec: 0,
      allowInternetAccess: false,
      metadata: {},
      createdAt: new Date().toISOString(),
      autoPaused: false,
      // The template's token, in every restore until the agent replaces it (see buildVm).
      envdAccessToken: newEnvdToken(),
    };
    const live: VmLive = {
      record,
      state: "pending",
      queue: Promise.resolve(),
      paths: vmPaths(`${vp.state.sandboxDir(resourceId)}/vm`),
    };
    const timer = new StepTimer();
    await buildVm(vp, live, { kind: "boot", image }, undefined, timer, undefined).catch(
      (err: unknown) => {
        const e = AgentError.from(err);
        throw new AgentError(e.code, `booting ${template.name} for microVMs: ${e.message}`, {
          cause: err,
        });
      },
    );
    try {
      const meta = await writeSnapshot(vp, live, name, true, timer);
      vp.logger.info(
        { template: template.name, snapshot: name, ms: timer.ms, steps: timer.steps },
        "microVM template booted and snapshotted",
      );
      return meta;
    } finally {
      const errors = await teardownVm(vp, resourceId, record, new StepTimer());
      if (errors.length > 0) vp.logger.error({ errors }, "removing the template VM failed");
    }
  });
}

/**
 * Disk, RAM and device state of a sandbox into a new snapshot. A running VM is stopped for the
 * copy (its device state saved through QMP) and continues after; a paused one is copied as is.
 */
export async function writeSnapshot(
  vp: VmParts,
  live: VmLive,
  name: string,
  ready: boolean,
  timer: StepTimer,
): Promise<VmSnapshotMeta> {
  const staging = await vp.store.stagingDir(name);
  const out = vmPaths(staging);
  const { record, paths } = live;
  const image = vp.store.imagePath(
    (await vp.store.readSnapshot(record.layers[0] ?? ""))?.baseTemplate ?? record.template,
  );
  const eager = vp.opts.eagerRestore === true;
  // Flattened onto the base image: the snapshot never depends on another snapshot's files.
  const flatten = (disk: string) =>
    runCommand("qemu-img", [
      ...["convert", "-U", "-O", "qcow2", "-F", "raw", "-B", image, disk, out.disk],
    ]);
  // A VM that goes on is stopped only to copy its overlay (flattened once it runs again); the
  // template VM of a ready snapshot is removed after, so its overlay is flattened as it is.
  const frozen = join(staging, "frozen.qcow2");
  const copy = async () => {
    if (ready) await flatten(paths.disk);
    else await runCommand("cp", ["--sparse=always", "--reflink=auto", paths.disk, frozen]);
    // Eager VMs keep their RAM in anonymous memory: it is in the state file instead.
    if (!eager) await runCommand("cp", ["--sparse=always", "--reflink=auto", paths.ram, out.ram]);
  };
  try {
    if (live.state === "running") {
      const qmp = await QmpClient.connect(paths.qmp);
      try {
        await qmp.execute("stop");
        await qmp.execute("migrate-set-capabilities", {
          capabilities: [{ capability: "x-ignore-shared", state: !eager }],
        });
        await timer.step("state", async () => {
          await qmp.execute("migrate", { uri: `exec:cat > '${out.state.replaceAll("'", "")}'` });
          for (;;) {
            const s = await qmp.execute<{ status?: string }>("query-migrate");
            if (s.status === "completed") break;
            if (s.status === "failed") throw new AgentError("internal", "snapshot state failed");
            await new Promise((r) => setTimeout(r, 5));
          }
        });
        await timer.step("copy", copy);
      } finally {
        await qmp.execute("cont").catch(() => {});
        qmp.close();
      }
    } else {
      await timer.step("copy", copy);
      await runCommand("cp", [paths.state, out.state]);
    }
    if (!ready) {
      await timer.step("flatten", async () => {
        await flatten(frozen);
        await rm(frozen);
      });
    }
    const meta: VmSnapshotMeta = {
      name,
      baseTemplate: image
        .split("/")
        .at(-1)!
        .replace(/\.img$/, ""),
      sourceSandboxId: ready ? "" : record.id,
      vcpus: record.vcpus,
      memoryMb: record.memoryMb,
      diskSizeMb: record.diskSizeMb,
      createdAt: new Date().toISOString(),
      ready,
      ...(record.envdAccessToken !== undefined && { envdAccessToken: record.envdAccessToken }),
    };
    await vp.store.commitSnapshot(staging, meta);
    return meta;
  } catch (err) {
    await vp.store.removeSnapshot(`.build-${name}-${process.pid}`).catch(() => {});
    throw err;
  }
}

export async function snapshotVm(vp: VmParts, id: string, name: string): Promise<SnapshotInfo> {
  assertSafeName(name, "snapshot name");
  const live = vp.sandboxes.get(id);
  if (
    (await vp.store.readSnapshot(name)) ||
    (await vp.templateStore.getTemplate(name).catch(() => undefined))
  ) {
    throw new AgentError("already_exists", `snapshot ${name} already exists`);
  }
  return serialize(live, async () => {
    if (live.state !== "running" && live.state !== "paused") {
      throw new AgentError("failed_precondition", `sandbox ${id} is ${live.state}`);
    }
    const timer = new StepTimer();
    const meta = await writeSnapshot(vp, live, name, false, timer);
    vp.logger.info(
      { op: "snapshot", sandboxId: id, snapshot: name, ms: timer.ms, steps: timer.steps },
      "microVM snapshot created",
    );
    return snapshotInfo(vp, meta);
  });
}

export async function snapshotInfo(vp: VmParts, meta: VmSnapshotMeta): Promise<SnapshotInfo> {
  return {
    name: meta.name,
    baseTemplate: meta.baseTemplate,
    sourceSandboxId: meta.sourceSandboxId,
    vcpus: meta.vcpus,
    memoryMb: meta.memoryMb,
    diskSizeMb: meta.diskSizeMb,
    sizeBytes: await vp.store.snapshotSize(meta.name),
    createdAt: new Date(meta.createdAt),
    sandboxCount: vp.sandboxes.usersOf(meta.name).length,
  };
}

export async function deleteVmSnapshot(vp: VmParts, name: string): Promise<void> {
  assertSafeName(name, "snapshot name");
  const meta = await vp.store.readSnapshot(name);
  if (!meta || meta.ready) {
    if (await vp.templateStore.getTemplate(name).catch(() => undefined)) {
      throw new AgentError("failed_precondition", `${name} is a template, not a snapshot`);
    }
    throw new AgentError("not_found", `snapshot ${name} not found`);
  }
  const users = vp.sandboxes.usersOf(name);
  if (users.length > 0) {
    throw new AgentError(
      "failed_precondition",
      `snapshot ${name} is in use by sandbox(es) ${users.join(", ")}`,
    );
  }
  await vp.store.removeSnapshot(name);
}

/**
 * Removes the base images and ready snapshots of templates that are gone (a snapshot template
 * deleted), once nothing stands on them: a ready snapshot while a sandbox uses it, an image
 * while a snapshot's disk is flattened onto it. Skipped while an image or a ready snapshot is
 * being made (the next sweep gets it).
 */
export async function sweepTemplateImages(vp: VmParts): Promise<void> {
  if (building.size > 0) return;
  const templates = new Set((await vp.templateStore.listTemplates()).map((t) => t.name));
  const removed: string[] = [];
  // Base templates of the snapshots that stay: their images stay too.
  const needed = new Set<string>();
  for (const meta of await vp.store.listSnapshots()) {
    const stale =
      meta.ready &&
      !templates.has(meta.baseTemplate) &&
      vp.sandboxes.usersOf(meta.name).length === 0;
    if (!stale) {
      needed.add(meta.baseTemplate);
      continue;
    }
    await vp.store.removeSnapshot(meta.name);
    removed.push(meta.name);
  }
  for (const name of await vp.store.imageTemplates()) {
    if (templates.has(name) || needed.has(name)) continue;
    if ([...vp.sandboxes.values()].some((live) => live.record.template === name)) continue;
    await rm(vp.store.imagePath(name), { force: true });
    removed.push(`${name}.img`);
  }
  if (removed.length > 0) {
    vp.logger.info({ removed }, "microVM images and snapshots of deleted templates removed");
  }
}
