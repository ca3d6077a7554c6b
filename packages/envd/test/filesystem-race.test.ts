import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  chmod,
  chown,
  lstat,
  mkdir,
  open,
  rename,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd, TEST_USER } from "./helpers/envd.js";

// envd's Remove, ListDir and watches checked what the user may do with a directory, then went on
// by its name as root: a process in the sandbox swapping the checked directory for a symlink to
// one of root's made envd delete root's files, list a directory closed to the user, or watch it,
// through it. All now go through directories opened once and checked on their descriptors.

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

/** Watches made while the swap runs. */
const WATCH_ROUNDS = 100;

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

  it("never watches a directory the user may not", async () => {
    const hidden = join(envd.dir, "hidden-watched");
    await mkdir(hidden, { mode: 0o700 });
    const work = await userDir("watch");
    const sub = join(work, "sub");
    const alt = join(work, "alt");
    await mkdir(sub);
    await symlink(hidden, alt);
    execFileSync("chown", ["-hR", `${uid}:${gid}`, work]);
    // The user's directory, held open: its name changes with every swap.
    const mine = await open(sub, "r");
    /** Puts the user's directory at `sub` (or, `false`, the symlink to root's there). */
    const settle = async (dirAtSub: boolean) => {
      if ((await lstat(sub)).isDirectory() === dirAtSub) return;
      await rename(sub, join(work, "aside"));
      await rename(alt, sub);
      await rename(join(work, "aside"), alt);
    };
    // Stopped between rounds: each swap of a watched directory is an event (inotify's
    // IN_MOVE_SELF) for its watch.
    const racer = startSwapper(uid, gid, sub, alt);
    swapper = racer;
    let made = 0;
    let refused = 0;
    try {
      for (let round = 0; round < WATCH_ROUNDS; round++) {
        racer.kill("SIGCONT");
        // The watch's check and start race the swap; a refusal (the symlink checked) is fine.
        const watcherId = await envd.filesystem.createWatcher({ path: sub }).then(
          (res) => res.watcherId,
          () => undefined,
        );
        racer.kill("SIGSTOP");
        if (!watcherId) {
          refused++;
          continue;
        }
        made++;
        try {
          // A watch that followed the symlink names root's new file while `sub` leads there.
          await settle(false);
          await writeFile(join(hidden, `secret-${round}`), "");
          await sleep(20);
          await settle(true);
          await writeFile(`/proc/self/fd/${mine.fd}/mine-${round}`, "");
          const names: string[] = [];
          for (let wait = 0; wait < 100 && !names.includes(`mine-${round}`); wait++) {
            await sleep(10);
            const { events } = await envd.filesystem.getWatcherEvents({ watcherId });
            names.push(...events.map((e) => e.name));
          }
          expect(names).not.toContain(`secret-${round}`);
          // What was checked is what is watched: the user's directory.
          expect(names).toContain(`mine-${round}`);
        } finally {
          await envd.filesystem.removeWatcher({ watcherId });
        }
      }
    } finally {
      await mine.close();
    }
    // The race ran: both outcomes of the check happened.
    expect(made).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });
});
