import { execFileSync } from "node:child_process";
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { FileType } from "@wrenn/proto/filesystem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { basicAuth, type RunningEnvd, startEnvd, TEST_USER } from "./helpers/envd.js";

const root = { headers: basicAuth("root") };

async function codeOf(promise: Promise<unknown>): Promise<Code | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("filesystem.Filesystem", () => {
  let envd: RunningEnvd;
  let uid: number;
  let gid: number;
  /** A directory TEST_USER owns, inside envd's temporary tree. */
  let home: string;

  beforeAll(async () => {
    envd = await startEnvd();
    uid = Number(execFileSync("id", ["-u", TEST_USER], { encoding: "utf8" }));
    gid = Number(execFileSync("id", ["-g", TEST_USER], { encoding: "utf8" }));
    // mkdtemp made it 0700: the unprivileged user must be able to walk through it.
    await chmod(envd.dir, 0o755);
    home = join(envd.dir, "user");
    await mkdir(home);
    await chown(home, uid, gid);
  });
  afterAll(async () => {
    await envd?.stop();
  });

  it("stats files, directories and symlinks (not following the link)", async () => {
    const file = join(home, "stat.txt");
    await writeFile(file, "hello");
    await chmod(file, 0o640);
    await symlink("stat.txt", join(home, "link"));
    const { entry } = await envd.filesystem.stat({ path: file });
    expect(entry).toMatchObject({
      name: "stat.txt",
      type: FileType.FILE,
      path: file,
      size: 5n,
      mode: 0o640,
      permissions: "-rw-r-----",
      owner: "root",
      group: "root",
    });
    expect(Number(entry?.modifiedTime?.seconds)).toBe(
      Math.floor((await stat(file)).mtimeMs / 1000),
    );
    const dir = await envd.filesystem.stat({ path: home });
    expect(dir.entry).toMatchObject({
      type: FileType.DIRECTORY,
      permissions: "drwxr-xr-x",
      owner: TEST_USER,
    });
    const link = await envd.filesystem.stat({ path: join(home, "link") });
    expect(link.entry).toMatchObject({
      type: FileType.SYMLINK,
      permissions: "lrwxrwxrwx",
      symlinkTarget: file,
    });
  });

  it("resolves relative and ~ paths in the acting user's home", async () => {
    const userHome = execFileSync("sh", ["-c", `getent passwd ${TEST_USER} | cut -d: -f6`], {
      encoding: "utf8",
    }).trim();
    const relative = await envd.filesystem.stat({ path: "." });
    expect(relative.entry?.path).toBe(userHome);
    const tilde = await envd.filesystem.stat({ path: "~" });
    expect(tilde.entry?.path).toBe(userHome);
    const rootHome = await envd.filesystem.stat({ path: "~" }, root);
    expect(rootHome.entry?.path).toBe("/root");
  });

  it("lists a directory to depth 1 and 2 with absolute paths", async () => {
    const dir = join(home, "tree");
    await mkdir(join(dir, "a", "deep"), { recursive: true });
    await writeFile(join(dir, "a", "inner.txt"), "x");
    await writeFile(join(dir, "a", "deep", "deeper.txt"), "x");
    await writeFile(join(dir, "top.txt"), "x");
    await symlink("/nonexistent-target", join(dir, "dangling"));

    const one = await envd.filesystem.listDir({ path: dir, depth: 1 });
    expect(one.entries.map((e) => e.path).sort()).toEqual([
      join(dir, "a"),
      join(dir, "dangling"),
      join(dir, "top.txt"),
    ]);
    const dangling = one.entries.find((e) => e.name === "dangling");
    expect(dangling).toMatchObject({
      type: FileType.SYMLINK,
      symlinkTarget: "/nonexistent-target",
    });

    const defaultDepth = await envd.filesystem.listDir({ path: dir });
    expect(defaultDepth.entries).toHaveLength(3);

    const two = await envd.filesystem.listDir({ path: dir, depth: 2 });
    expect(two.entries.map((e) => e.path).sort()).toEqual(
      [
        join(dir, "a"),
        join(dir, "a", "deep"),
        join(dir, "a", "inner.txt"),
        join(dir, "dangling"),
        join(dir, "top.txt"),
      ].sort(),
    );
    const three = await envd.filesystem.listDir({ path: dir, depth: 3 });
    expect(three.entries.map((e) => e.name)).toContain("deeper.txt");
  });

  it("makes directories with their parents, owned by the acting user", async () => {
    const path = join(home, "made", "by", "user");
    const { entry } = await envd.filesystem.makeDir({ path });
    expect(entry).toMatchObject({ path, type: FileType.DIRECTORY, owner: TEST_USER });
    for (const dir of [join(home, "made"), join(home, "made", "by"), path]) {
      const st = await stat(dir);
      expect([st.uid, st.gid]).toEqual([uid, gid]);
    }
    expect(await codeOf(envd.filesystem.makeDir({ path }))).toBe(Code.AlreadyExists);

    const asRoot = join(home, "made-by-root");
    await envd.filesystem.makeDir({ path: asRoot }, root);
    expect((await stat(asRoot)).uid).toBe(0);
  });

  it("moves files and directories, creating the destination's parents", async () => {
    const source = join(home, "move-me");
    await mkdir(join(source, "sub"), { recursive: true });
    await writeFile(join(source, "sub", "f.txt"), "moved");
    const destination = join(home, "moved", "here", "dir");
    const { entry } = await envd.filesystem.move({ source, destination });
    expect(entry).toMatchObject({ path: destination, type: FileType.DIRECTORY });
    expect(await readFile(join(destination, "sub", "f.txt"), "utf8")).toBe("moved");
    await expect(lstat(source)).rejects.toThrow();
    expect((await stat(join(home, "moved"))).uid).toBe(uid);
    expect(await codeOf(envd.filesystem.move({ source, destination: join(home, "x") }))).toBe(
      Code.NotFound,
    );
  });

  it("moves across filesystems (copy + remove), keeping owner, mode, times and links", async () => {
    const other = await mkdtemp("/dev/shm/wrenn-fs-test-");
    try {
      const source = join(home, "cross");
      await mkdir(join(source, "d"), { recursive: true });
      await writeFile(join(source, "d", "f"), "across");
      await chmod(join(source, "d", "f"), 0o600);
      await chown(join(source, "d", "f"), uid, gid);
      const then = new Date("2020-01-02T03:04:05Z");
      await utimes(join(source, "d", "f"), then, then);
      await symlink("d/f", join(source, "link"));
      await chmod(join(source, "d"), 0o750);
      await chmod(other, 0o777);
      const destination = join(other, "cross");
      // The source goes as mv(1) run by the user would remove it: a tree the user may not empty
      // is refused before anything is copied.
      expect(await codeOf(envd.filesystem.move({ source, destination }))).toBe(
        Code.PermissionDenied,
      );
      await expect(lstat(destination)).rejects.toThrow();
      execFileSync("chown", ["-hR", `${uid}:${gid}`, source]);
      await envd.filesystem.move({ source, destination });
      await expect(lstat(source)).rejects.toThrow();
      const st = await stat(join(destination, "d", "f"));
      expect([st.uid, st.mode & 0o777, st.mtimeMs]).toEqual([uid, 0o600, then.getTime()]);
      expect(await readFile(join(destination, "d", "f"), "utf8")).toBe("across");
      expect((await stat(join(destination, "d"))).mode & 0o777).toBe(0o750);
      expect(await readlink(join(destination, "link"))).toBe("d/f");
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("moves a directory of an overlay's lower layer as a rename: root's, in the user's directory", async () => {
    // overlayfs answers EXDEV for it (redirect_dir=off, as sandboxes are mounted) and envd copies
    // and removes instead; within one filesystem that is still a rename, which the user may make
    // of what they may unlink from its directory, whoever owns what it holds.
    const base = await mkdtemp(join(envd.dir, "overlay-"));
    await chmod(base, 0o755);
    const [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map((d) =>
      join(base, d),
    ) as [string, string, string, string];
    await mkdir(join(lower, "home", "made-by-root"), { recursive: true });
    await writeFile(join(lower, "home", "made-by-root", "f"), "root's");
    await chown(join(lower, "home"), uid, gid);
    for (const dir of [upper, work, merged]) await mkdir(dir);
    const options = `lowerdir=${lower},upperdir=${upper},workdir=${work},redirect_dir=off`;
    execFileSync("mount", ["-t", "overlay", "overlay", "-o", options, merged]);
    try {
      const source = join(merged, "home", "made-by-root");
      await envd.filesystem.move({ source, destination: join(merged, "home", "renamed") });
      expect(await readFile(join(merged, "home", "renamed", "f"), "utf8")).toBe("root's");
      await expect(lstat(source)).rejects.toThrow();
    } finally {
      execFileSync("umount", [merged]);
    }
  });

  it("refuses to move a directory into itself, also into a filesystem mounted inside it", async () => {
    const outer = join(home, "outer");
    const mount = join(outer, "mnt");
    await mkdir(mount, { recursive: true });
    await symlink(outer, join(home, "outer-link"));
    // Across filesystems the move is a copy: into itself, it would copy its own copy, endlessly.
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", mount]);
    try {
      for (const destination of [
        join(outer, "inside"),
        join(mount, "inside"),
        join(home, "outer-link", "mnt", "inside"),
      ]) {
        const err = ConnectError.from(
          await envd.filesystem.move({ source: outer, destination }, root).catch((e: unknown) => e),
        );
        expect([destination, err.code]).toEqual([destination, Code.InvalidArgument]);
        expect(err.rawMessage).toContain("into itself");
      }
      expect(await readdir(mount)).toEqual([]);
    } finally {
      execFileSync("umount", ["--lazy", mount]);
      await rm(outer, { recursive: true, force: true });
      await rm(join(home, "outer-link"));
    }
  });

  it("reports a full disk as ResourceExhausted, its exact code in the metadata", async () => {
    // A tmpfs with room for a few inodes, all taken: every new entry meets ENOSPC.
    const full = await mkdtemp(join(envd.dir, "full-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,nr_inodes=8,mode=0777", "tmpfs", full]);
    try {
      for (let i = 0; ; i++) {
        const made = await writeFile(join(full, `f${i}`), "").then(
          () => true,
          () => false,
        );
        if (!made) break;
      }
      const source = join(home, "to-move");
      await mkdir(source);
      await chown(source, uid, gid);
      for (const call of [
        envd.filesystem.makeDir({ path: join(full, "d") }),
        envd.filesystem.move({ source, destination: join(full, "moved") }),
      ]) {
        const err = ConnectError.from(await call.catch((e: unknown) => e));
        expect(err.code).toBe(Code.ResourceExhausted);
        expect(err.metadata.get("wrenn-error-code")).toBe("insufficient_storage");
        expect(err.rawMessage).toMatch(/no space/i);
      }
      await rm(source, { recursive: true });
    } finally {
      execFileSync("umount", [full]);
      await rm(full, { recursive: true, force: true });
    }
  });

  it("removes recursively, and reports a missing path as not_found", async () => {
    const dir = join(home, "remove-me");
    await mkdir(join(dir, "a", "b"), { recursive: true });
    await writeFile(join(dir, "a", "b", "c"), "x");
    execFileSync("chown", ["-R", `${uid}:${gid}`, dir]);
    await envd.filesystem.remove({ path: dir });
    await expect(lstat(dir)).rejects.toThrow();
    expect(await codeOf(envd.filesystem.remove({ path: dir }))).toBe(Code.NotFound);
  });

  it("refuses what the acting user may not do, and allows it for root", async () => {
    const secret = join(envd.dir, "secret");
    await writeFile(secret, "root only");
    await chmod(secret, 0o600);
    const rootDir = join(envd.dir, "root-dir");
    await mkdir(rootDir, { mode: 0o755 });
    await writeFile(join(rootDir, "keep"), "x");

    expect(await codeOf(envd.filesystem.makeDir({ path: join(rootDir, "nope") }))).toBe(
      Code.PermissionDenied,
    );
    expect(await codeOf(envd.filesystem.remove({ path: join(rootDir, "keep") }))).toBe(
      Code.PermissionDenied,
    );
    expect(
      await codeOf(
        envd.filesystem.move({ source: join(rootDir, "keep"), destination: join(home, "stolen") }),
      ),
    ).toBe(Code.PermissionDenied);
    expect(
      await codeOf(
        envd.filesystem.move({ source: join(home, "stat.txt"), destination: join(rootDir, "in") }),
      ),
    ).toBe(Code.PermissionDenied);
    // A tree holding a root-owned directory cannot be emptied by the user: nothing is removed.
    const mixed = join(home, "mixed");
    await mkdir(join(mixed, "root-sub"), { recursive: true });
    await writeFile(join(mixed, "root-sub", "f"), "x");
    await chown(mixed, uid, gid);
    expect(await codeOf(envd.filesystem.remove({ path: mixed }))).toBe(Code.PermissionDenied);
    expect((await stat(join(mixed, "root-sub", "f"))).isFile()).toBe(true);
    // Stat needs only search permission on the way, as stat(2).
    expect((await envd.filesystem.stat({ path: secret })).entry?.mode).toBe(0o600);
    const locked = join(envd.dir, "locked");
    await mkdir(locked, { mode: 0o700 });
    expect(await codeOf(envd.filesystem.listDir({ path: locked }))).toBe(Code.PermissionDenied);
    expect(await codeOf(envd.filesystem.stat({ path: join(locked, "x") }))).toBe(
      Code.PermissionDenied,
    );

    await envd.filesystem.makeDir({ path: join(rootDir, "yes") }, root);
    await envd.filesystem.remove({ path: join(rootDir, "keep") }, root);
    expect((await envd.filesystem.listDir({ path: locked }, root)).entries).toEqual([]);
  });

  it("answers bad input with clear codes and keeps serving", async () => {
    const file = join(home, "plain.txt");
    await writeFile(file, "x");
    expect(await codeOf(envd.filesystem.stat({ path: join(home, "missing") }))).toBe(Code.NotFound);
    expect(await codeOf(envd.filesystem.listDir({ path: join(home, "missing") }))).toBe(
      Code.NotFound,
    );
    // As E2B's envd: listing a file, or making a directory where one is, is a wrong argument.
    expect(await codeOf(envd.filesystem.listDir({ path: file }))).toBe(Code.InvalidArgument);
    expect(await codeOf(envd.filesystem.makeDir({ path: file }))).toBe(Code.InvalidArgument);
    expect(await codeOf(envd.filesystem.makeDir({ path: join(file, "under-a-file") }))).toBe(
      Code.FailedPrecondition,
    );
    expect(await codeOf(envd.filesystem.stat({ path: "" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(envd.filesystem.stat({ path: "~nobody/x" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(envd.filesystem.stat({ path: "a\0b" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(envd.filesystem.remove({ path: "" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(envd.filesystem.remove({ path: "/" }, root))).toBe(Code.InvalidArgument);
    expect(
      await codeOf(envd.filesystem.stat({ path: "/" }, { headers: basicAuth("no-such-user") })),
    ).toBe(Code.InvalidArgument);
    expect((await envd.filesystem.stat({ path: "/" })).entry?.type).toBe(FileType.DIRECTORY);
  });
});
