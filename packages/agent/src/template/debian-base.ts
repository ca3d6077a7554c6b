import type { Dirent } from "node:fs";
import { lstat, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { AgentError } from "../errors.js";
import { makeStandardDirs } from "./minimal.js";
import { run } from "./run.js";
import type { BuildContext } from "./types.js";

export const DEBIAN_SUITE = "bookworm";
export const DEBIAN_PACKAGES = [
  "python3",
  "nodejs",
  "git",
  "curl",
  "ca-certificates",
  "procps",
  "iproute2",
];

interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
}

/** The `base` template: Debian bookworm (minbase + DEBIAN_PACKAGES) from the host's mirror. */
export function buildDebianBase(root: string, ctx: BuildContext): Promise<void> {
  return buildDebian(root, ctx);
}

/**
 * Debian bookworm: minbase + DEBIAN_PACKAGES by debootstrap, then `extraPackages` by apt (which,
 * unlike debootstrap, resolves virtual packages and alternatives), with user 1000 and without
 * apt caches, docs and message catalogues.
 */
export async function buildDebian(
  root: string,
  ctx: BuildContext,
  extraPackages: readonly string[] = [],
): Promise<void> {
  const mirror = await debianMirror();
  ctx.progress(`debootstrap ${DEBIAN_SUITE} from ${mirror}`);
  await run(
    "debootstrap",
    [`--variant=minbase`, `--include=${DEBIAN_PACKAGES.join(",")}`, DEBIAN_SUITE, root, mirror],
    { onLine: (line) => ctx.progress(line) },
  );
  if (extraPackages.length > 0) {
    ctx.progress(`apt-get install ${extraPackages.join(" ")}`);
    const apt = (...args: string[]) =>
      run("chroot", [root, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", ...args], {
        onLine: (line) => ctx.progress(line),
      });
    await apt("update");
    await apt("install", "-y", "--no-install-recommends", ...extraPackages);
  }

  ctx.progress("creating user 'user' (uid 1000)");
  await run("chroot", [
    root,
    "useradd",
    "--uid",
    "1000",
    "--user-group",
    "--create-home",
    "--shell",
    "/bin/bash",
    "user",
  ]);
  await assertPasswdEntry(root, "root", "0:0");
  await assertPasswdEntry(root, "user", "1000:1000");

  ctx.progress("cleaning apt caches, docs and translations");
  await run("chroot", [root, "apt-get", "clean"]);
  for (const dir of ["var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info"]) {
    await emptyDir(join(root, dir));
  }
  // Message catalogues (44 MB); programs fall back to English. locale.alias stays.
  await emptyDir(join(root, "usr/share/locale"), (entry) => entry.isDirectory());
  await makeStandardDirs(root);
  // The sandbox resolves names through its own network setup, not the build host's.
  await rm(join(root, "etc/resolv.conf"), { force: true });
  // envd's command line names /usr/bin/node (lstat: a symlink there points into the root).
  await lstat(join(root, "usr/bin/node")).catch((err) => {
    throw new AgentError("internal", "base template has no /usr/bin/node", { cause: err });
  });
}

async function assertPasswdEntry(root: string, user: string, ids: string): Promise<void> {
  const passwd = await readFile(join(root, "etc/passwd"), "utf8");
  if (!passwd.split("\n").some((line) => line.startsWith(`${user}:x:${ids}:`))) {
    throw new AgentError("internal", `base template: /etc/passwd lacks ${user} with ${ids}`);
  }
}

async function emptyDir(dir: string, only: (entry: Dirent) => boolean = () => true) {
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (only(entry)) await rm(join(dir, entry.name), { recursive: true, force: true });
  }
}

/** The Debian archive apt on this machine uses (deb822 .sources or one-line .list files). */
export async function debianMirror(aptDir = "/etc/apt"): Promise<string> {
  const sources: AptSource[] = [];
  const files = [join(aptDir, "sources.list")];
  for (const f of await readdir(join(aptDir, "sources.list.d")).catch(() => [])) {
    files.push(join(aptDir, "sources.list.d", f));
  }
  for (const file of files) {
    const text = await readFile(file, "utf8").catch(() => undefined);
    if (text === undefined) continue;
    if (file.endsWith(".sources")) sources.push(...parseDeb822(text));
    else if (file.endsWith(".list")) sources.push(...parseOneLine(text));
  }
  const archives = sources.filter(
    (s) => s.types.includes("deb") && s.suites.some((suite) => /^[a-z]+$/.test(suite)),
  );
  const pick =
    archives.find((s) => s.suites.includes(DEBIAN_SUITE)) ??
    archives.find((s) => s.uris.some((u) => /\/debian\/?$/.test(u)));
  const uri = pick?.uris[0];
  if (!uri) {
    throw new AgentError("failed_precondition", "no Debian archive found in apt's sources");
  }
  return uri;
}

function parseDeb822(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split("\n")) {
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (m) fields.set(m[1]!.toLowerCase(), m[2]!);
    }
    if (fields.get("enabled") === "no") continue;
    const list = (key: string) => (fields.get(key) ?? "").split(/\s+/).filter(Boolean);
    out.push({ types: list("types"), uris: list("uris"), suites: list("suites") });
  }
  return out;
}

function parseOneLine(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split("\n")) {
    const line = raw
      .replace(/#.*/, "")
      .replace(/\[[^\]]*\]/, "")
      .trim();
    const [type, uri, suite] = line.split(/\s+/);
    if (type && uri && suite) out.push({ types: [type], uris: [uri], suites: [suite] });
  }
  return out;
}
