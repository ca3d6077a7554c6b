import { constants, existsSync } from "node:fs";
import { chmod, chown, copyFile, mkdir, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { AgentError } from "../errors.js";
import { run } from "./run.js";
import type { BuildContext } from "./types.js";

const BUSYBOX = "/bin/busybox";
const SETPRIV = "/usr/bin/setpriv";

/**
 * A tiny root for tests and fast fixtures, built in about a second without any download:
 * the host's static busybox and a copy of the host's Node with the libraries it links. Copies,
 * not bind mounts, so the sandbox sees nothing of the host; the launcher isolates it exactly
 * like `base`.
 */
export async function buildMinimalRootfs(root: string, ctx: BuildContext): Promise<void> {
  for (const dir of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run"]) {
    await mkdir(join(root, dir), { recursive: true });
  }
  await makeStandardDirs(root);

  ctx.progress("copying busybox");
  if (!(await isStatic(BUSYBOX))) {
    throw new AgentError("failed_precondition", `${BUSYBOX} is not static: install busybox-static`);
  }
  await copyInto(root, BUSYBOX);
  const applets = (await run(BUSYBOX, ["--list-full"])).split("\n").filter(Boolean);
  for (const applet of applets) {
    await mkdir(dirname(join(root, applet)), { recursive: true });
    await symlink(BUSYBOX, join(root, applet)).catch(ignoreExists);
  }

  // E2B's SDK starts every command as `/bin/bash -l -c …`; busybox has no bash, its sh does.
  await writeFile(join(root, "bin/bash"), '#!/bin/sh\nexec /bin/sh "$@"\n', { mode: 0o755 });

  // envd switches users through util-linux's setpriv (busybox's lacks --reuid): take the host's
  // in place of the applet, when the host has it.
  if (existsSync(SETPRIV)) {
    for (const applet of ["bin/setpriv", "usr/bin/setpriv"]) {
      await rm(join(root, applet), { force: true });
    }
    await copyInto(root, SETPRIV);
    for (const lib of await sharedLibraries(SETPRIV)) await copyInto(root, lib);
  }

  ctx.progress("copying node and its libraries");
  const node = await realpath(process.execPath);
  await copyFile(node, join(root, "usr/bin/node"), constants.COPYFILE_FICLONE);
  for (const lib of await sharedLibraries(node)) await copyInto(root, lib);

  await writeFile(
    join(root, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
  );
  await writeFile(join(root, "etc/group"), "root:x:0:\nuser:x:1000:\n");
  await writeFile(join(root, "etc/hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost\n");
}

/** Directories every template has, with the owners and modes the sandbox relies on. */
export async function makeStandardDirs(root: string): Promise<void> {
  for (const dir of ["tmp", "var/tmp"]) {
    await mkdir(join(root, dir), { recursive: true });
    await chmod(join(root, dir), 0o1777);
  }
  await mkdir(join(root, "root"), { recursive: true, mode: 0o700 });
  await mkdir(join(root, "home/user"), { recursive: true });
  await chown(join(root, "home/user"), 1000, 1000);
  // Mount point of envd's directory (the launcher binds it read-only).
  await mkdir(join(root, "opt/wrenn/envd"), { recursive: true });
}

/** The libraries `ldd` lists (including the loader), by the paths the binary will look for. */
export async function sharedLibraries(binary: string): Promise<string[]> {
  const out = await run("ldd", [binary]);
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

async function isStatic(binary: string): Promise<boolean> {
  try {
    await run("ldd", [binary]);
    return false;
  } catch {
    return true; // ldd fails with "not a dynamic executable"
  }
}

/** Copies a host file's contents (symlinks resolved) to the same path under root. */
export async function copyInto(root: string, hostPath: string): Promise<void> {
  const dest = join(root, hostPath);
  await mkdir(dirname(dest), { recursive: true });
  await copyFile(await realpath(hostPath), dest, constants.COPYFILE_FICLONE);
  await chmod(dest, 0o755);
}

function ignoreExists(err: NodeJS.ErrnoException): void {
  if (err.code !== "EEXIST") throw err;
}
