import { lstat, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Points the sandbox's resolver at its gateway, where the agent's DNS forwarder answers while
 * it has internet access (the host's own resolver is not reachable from a sandbox). Written by
 * the host into the new, empty upper layer before the overlay is mounted and anything runs in
 * the sandbox, so no sandbox process can have planted a symlink on the way. `layers` are the
 * template's, topmost first: when the first that has an /etc has no directory there (a
 * snapshot that replaced it), the sandbox keeps what it has.
 */
export async function writeResolvConf(
  upperDir: string,
  layers: readonly string[],
  gateway: string,
): Promise<void> {
  for (const layer of layers) {
    const etc = await lstat(join(layer, "etc")).catch(() => undefined);
    if (!etc) continue;
    if (!etc.isDirectory()) return;
    break;
  }
  await mkdir(join(upperDir, "etc"), { recursive: true, mode: 0o755 });
  await writeFile(join(upperDir, "etc", "resolv.conf"), `nameserver ${gateway}\n`, {
    mode: 0o644,
  });
}
