import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmod, chown, mkdir, rename, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd, TEST_USER } from "./helpers/envd.js";

// envd's Remove and ListDir checked what the user may do with a directory, then went on by its
// name as root: a process in the sandbox swapping the checked directory for a symlink to one of
// root's made envd delete root's files, or list a directory closed to the user, through it.
// Both now go through directories opened once and checked on their descriptors.

/** As `uid`: exchanges `a` and `b` (a directory and a symlink) atomically, as fast as it can. */
function startSwapper(uid: number, gid: number, a: string, b: string): ChildProcess {
  const script = `
import ctypes, os, sys
os.setgroups([]); os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[1]))
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[3].encode(), sys.argv[4].encode()
while True:
    libc.renameat2(-100, a, -100, b, 2)
`;
  return spawn("python3", ["-c", script, String(uid), String(gid), a, b], { stdio: "ignore" });
}

describe.skipIf(process.getuid?.() !== 0)("filesystem.Filesystem under a directory swap", () => {
  let envd: RunningEnvd;
  let swapper: ChildProcess | undefined;
  let uid: number;
  let gid: number;

  /** A new directory of the user's, in envd's tree. */
  async function userDir(name: string): Promise<string> {
    const dir = join(envd.dir, name);
    await mkdir(dir);
    await chown(dir, uid, gid);
    return dir;
  }

  beforeAll(async () => {
    envd = await startEnvd();
    uid = Number(execFileSync("id", ["-u", TEST_USER], { encoding: "utf8" }));
    gid = Number(execFileSync("id", ["-g", TEST_USER], { encoding: "utf8" }));
    await chmod(envd.dir, 0o755);
  });
  afterEach(() => {
    swapper?.kill("SIGKILL");
  });
  afterAll(async () => {
    await envd?.stop();
  });

  it("never removes a file the user may not", async () => {
    // root's directory, open to all but writable by root only: the user cannot empty it.
    const guarded = join(envd.dir, "guarded");
    await mkdir(guarded, { mode: 0o755 });
    await writeFile(join(guarded, "keep"), "root's");
    const work = await userDir("remove");
    const sub = join(work, "sub");
    const alt = join(work, "alt");
    swapper = startSwapper(uid, gid, sub, alt);
    let removed = 0;
    for (let round = 0; round < 200; round++) {
      // Last round's leftovers are moved aside, not removed: a removal by name would race the
      // swapper as envd's did. Each round's tree is made aside and then moved into place.
      await rename(sub, join(work, `old-sub-${round}`)).catch(() => {});
      await rename(alt, join(work, `old-alt-${round}`)).catch(() => {});
      const stage = join(work, `stage-${round}`);
      await mkdir(join(stage, "sub", "inner"), { recursive: true });
      await writeFile(join(stage, "sub", "keep"), "the user's");
      await symlink(guarded, join(stage, "alt"));
      execFileSync("chown", ["-hR", `${uid}:${gid}`, stage]);
      await rename(join(stage, "alt"), alt);
      await rename(join(stage, "sub"), sub);
      // The swap may make the call fail (a name gone, root's file refused); only what is left counts.
      await envd.filesystem.remove({ path: sub }).then(
        () => removed++,
        () => {},
      );
      expect((await stat(join(guarded, "keep"))).isFile()).toBe(true);
    }
    // The race ran: removes got through between swaps.
    expect(removed).toBeGreaterThan(0);
  });

  it("never lists a directory the user may not", async () => {
    const hidden = join(envd.dir, "hidden");
    await mkdir(hidden, { mode: 0o700 });
    await writeFile(join(hidden, "secret-name"), "");
    const work = await userDir("list");
    const sub = join(work, "sub");
    const alt = join(work, "alt");
    await mkdir(sub);
    await writeFile(join(sub, "mine"), "");
    await symlink(hidden, alt);
    execFileSync("chown", ["-hR", `${uid}:${gid}`, work]);
    swapper = startSwapper(uid, gid, sub, alt);
    let listedMine = 0;
    for (let round = 0; round < 300; round++) {
      const { entries } = await envd.filesystem.listDir({ path: work, depth: 2 });
      const names = entries.map((e) => e.name);
      expect(names).not.toContain("secret-name");
      if (names.includes("mine")) listedMine++;
    }
    // The race ran: the user's own directory was descended into between swaps.
    expect(listedMine).toBeGreaterThan(0);
  });
});
