import { access, mkdir, rename, rm } from "node:fs/promises";
import { AgentError } from "../errors.js";
import { runCommand } from "../host/index.js";
import { partialName } from "./disk.js";

/**
 * Copies a sandbox's overlay upper dir into a new read-only layer dir, e.g. for a snapshot,
 * while the sandbox keeps running. GNU `cp -a` keeps owners, modes, times, hard links, symlinks,
 * xattrs (trusted.overlay.opaque included, as root) and device nodes (whiteouts are 0/0 char
 * devices), so deletions stay deletions when the layer is stacked as a lower. The copy is made
 * beside the target and renamed into place: a layer dir exists complete or not at all.
 * Files being written during the copy are copied as they are at that moment: freeze the
 * sandbox's cgroup around this call for a consistent point in time.
 */
export async function freezeUpperToLayer(upperDir: string, layerDir: string): Promise<void> {
  const taken = await access(layerDir).then(
    () => true,
    () => false,
  );
  // rename() would silently replace an empty directory.
  if (taken) throw new AgentError("already_exists", `layer ${layerDir} already exists`);
  const partial = partialName(layerDir);
  await mkdir(partial, { recursive: true });
  try {
    await runCommand("cp", ["-a", "--sparse=always", `${upperDir}/.`, `${partial}/`]);
    await rename(partial, layerDir);
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw AgentError.from(err);
  }
}
