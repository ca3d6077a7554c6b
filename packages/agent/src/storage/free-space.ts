import { statfs } from "node:fs/promises";
import { AgentError } from "../errors.js";

/**
 * Refuses a sandbox whose disk would not fit in what `dir`'s file system has free: its disk is
 * a sparse file, so without this the create succeeds and the sandbox fails later, mid-write.
 */
export async function assertRoomFor(dir: string, diskSizeMb: number): Promise<void> {
  const fs = await statfs(dir);
  const freeMb = Math.floor((fs.bavail * fs.bsize) / 2 ** 20);
  if (freeMb < diskSizeMb) {
    throw new AgentError(
      "insufficient_storage",
      `this host has ${freeMb} MiB of disk free, the sandbox asks for ${diskSizeMb} MiB`,
    );
  }
}
