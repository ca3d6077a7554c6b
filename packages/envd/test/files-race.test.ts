import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmod, chown, mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEnvd, startEnvd, TEST_USER } from "./helpers/envd.js";

// Issue #13 finding 7: envd checked access on the resolved path, then reopened the name; a
// process in the sandbox swapping a symlink in between made envd (root) open a file the user may
// not read. Now the file is opened once and the opened file is checked.

describe("envd /files under a symlink swap", () => {
  let envd: RunningEnvd;
  let swapper: ChildProcess | undefined;
  let home: string;

  beforeAll(async () => {
    envd = await startEnvd();
    const uid = Number(execFileSync("id", ["-u", TEST_USER], { encoding: "utf8" }));
    const gid = Number(execFileSync("id", ["-g", TEST_USER], { encoding: "utf8" }));
    await chmod(envd.dir, 0o755);
    home = join(envd.dir, "race");
    await mkdir(home);
    await chown(home, uid, gid);
    await writeFile(join(home, "mine"), "user data");
    await chown(join(home, "mine"), uid, gid);
    await writeFile(join(envd.dir, "secret"), "root only");
    await chmod(join(envd.dir, "secret"), 0o600);
    await symlink(join(home, "mine"), join(home, "link"));
    await mkdir(join(home, "mydir"));
    await chown(join(home, "mydir"), uid, gid);
    await mkdir(join(envd.dir, "rootdir"), { mode: 0o755 });
    await symlink(join(home, "mydir"), join(home, "updir"));
  });
  afterAll(async () => {
    swapper?.kill("SIGKILL");
    await envd?.stop();
  });

  it.skipIf(process.getuid?.() !== 0)("never serves a file the user may not read", async () => {
    // Atomically replaces `link` with one pointing at the other file, as fast as it can.
    const script = `
import os, sys
home, mine, secret = sys.argv[1], sys.argv[2], sys.argv[3]
i = 0
while True:
    tmp = os.path.join(home, ".swap")
    try: os.unlink(tmp)
    except FileNotFoundError: pass
    os.symlink(secret if i % 2 else mine, tmp)
    os.replace(tmp, os.path.join(home, "link"))
    i += 1
`;
    swapper = spawn("python3", ["-c", script, home, join(home, "mine"), join(envd.dir, "secret")], {
      stdio: "ignore",
    });
    const url = `${envd.baseUrl}/files?${new URLSearchParams({ path: join(home, "link") })}`;
    const seen = new Map<string, number>();
    for (let round = 0; round < 60; round++) {
      const answers = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const res = await fetch(url);
          return `${res.status} ${res.status === 200 ? await res.text() : ""}`;
        }),
      );
      for (const a of answers) seen.set(a, (seen.get(a) ?? 0) + 1);
    }
    swapper.kill("SIGKILL");
    // Both outcomes of a fair check happened; the leak never did.
    expect([...seen.keys()].some((k) => k.startsWith("200 user data"))).toBe(true);
    expect([...seen.keys()].some((k) => k.startsWith("403"))).toBe(true);
    expect([...seen.keys()].filter((k) => k.includes("root only"))).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "never writes into a directory the user may not write",
    async () => {
      // `updir` flips between the user's directory and a root-only one.
      const script = `
import os, sys
home, mine, theirs = sys.argv[1], sys.argv[2], sys.argv[3]
i = 0
while True:
    tmp = os.path.join(home, ".swapdir")
    try: os.unlink(tmp)
    except FileNotFoundError: pass
    os.symlink(theirs if i % 2 else mine, tmp)
    os.replace(tmp, os.path.join(home, "updir"))
    i += 1
`;
      swapper = spawn(
        "python3",
        ["-c", script, home, join(home, "mydir"), join(envd.dir, "rootdir")],
        { stdio: "ignore" },
      );
      const statuses = new Map<number, number>();
      for (let round = 0; round < 40; round++) {
        const results = await Promise.all(
          Array.from({ length: 10 }, async (_, i) => {
            const path = join(home, "updir", `f${round}-${i}`);
            const res = await fetch(`${envd.baseUrl}/files?${new URLSearchParams({ path })}`, {
              method: "POST",
              headers: { "content-type": "application/octet-stream" },
              body: "planted",
            });
            await res.arrayBuffer();
            return res.status;
          }),
        );
        for (const s of results) statuses.set(s, (statuses.get(s) ?? 0) + 1);
      }
      swapper.kill("SIGKILL");
      expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
      expect(await readdir(join(envd.dir, "rootdir"))).toEqual([]);
    },
  );
});
