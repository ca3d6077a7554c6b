import { execFileSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostArch, syscallNumber } from "../src/launcher/seccomp.js";
import {
  assertSafeName,
  DEBIAN_PACKAGES,
  debianMirror,
  isSafeName,
  TemplateStore,
} from "../src/template/index.js";
import { SandboxFixture } from "./fixtures/sandbox.js";

describe("SafeName", () => {
  const good = ["base", "test-minimal", "my_snap.v2", "A", "a".repeat(64), "1", "-x", "a..b"];
  const evil = [
    "",
    ".",
    "..",
    "../x",
    "a/b",
    "/etc",
    ".hidden",
    "a".repeat(65),
    "a b",
    "a\0b",
    "a\nb",
    "snap\\x",
    "é",
    "~root",
    "a:b",
    "$(id)",
  ];
  it.each(good)("accepts %j", (name) => {
    expect(isSafeName(name)).toBe(true);
    expect(() => assertSafeName(name)).not.toThrow();
  });
  it.each(evil)("refuses %j with invalid_argument", (name) => {
    expect(isSafeName(name)).toBe(false);
    expect(() => assertSafeName(name)).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
  });
});

describe("debianMirror", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "wrenn-apt-test-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads deb822 .sources, skipping security and disabled stanzas", async () => {
    const apt = join(dir, "deb822");
    mkdirSync(join(apt, "sources.list.d"), { recursive: true });
    writeFileSync(
      join(apt, "sources.list.d/debian.sources"),
      [
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main",
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no",
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main",
      ].join("\n\n"),
    );
    writeFileSync(
      join(apt, "sources.list.d/other.list.disabled"),
      "deb http://nope.example/ bookworm main\n",
    );
    expect(await debianMirror(apt)).toBe("http://mirror.example/debian");
  });

  it("reads one-line sources.list with options", async () => {
    const apt = join(dir, "oneline");
    mkdirSync(apt, { recursive: true });
    writeFileSync(
      join(apt, "sources.list"),
      "# deb http://commented.example/debian bookworm main\ndeb-src http://src.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://line.example/debian bookworm main contrib\n",
    );
    expect(await debianMirror(apt)).toBe("http://line.example/debian");
  });

  it("fails with failed_precondition when apt has no Debian archive", async () => {
    await expect(debianMirror(join(dir, "missing"))).rejects.toMatchObject({
      code: "failed_precondition",
    });
  });
});

describe("TemplateStore (builds test-minimal for real; needs root)", () => {
  let agentDir: string;
  let store: TemplateStore;
  beforeAll(() => {
    agentDir = mkdtempSync(join(tmpdir(), "wrenn-template-test-"));
    store = new TemplateStore({ agentDir });
  });
  afterAll(() => rmSync(agentDir, { recursive: true, force: true }));

  it("builds test-minimal once for concurrent callers, atomically, with progress", async () => {
    const progress: string[] = [];
    const [a, b] = await Promise.all([
      store.ensureTemplate("test-minimal", { onProgress: (m) => progress.push(m) }),
      store.ensureTemplate("test-minimal"),
    ]);
    expect(a).toEqual(b); // a second build would have failed with already_exists at its rename
    expect(a).toMatchObject({ name: "test-minimal", kind: "base", layers: ["test-minimal"] });
    expect(a.sizeBytes).toBeGreaterThan(10_000_000);
    expect(progress.length).toBeGreaterThan(0);
    expect(readdirSync(store.dir)).toEqual(["test-minimal"]); // no build debris
    expect(await store.ensureTemplate("test-minimal")).toEqual(a); // cached
    const json = JSON.parse(readFileSync(join(store.dir, "test-minimal/template.json"), "utf8"));
    expect(json).toMatchObject({ name: "test-minimal", kind: "base", layers: ["test-minimal"] });
    expect(typeof json.created_at).toBe("string");
    expect(json.size_bytes).toBe(a.sizeBytes);
  });

  it("contains copies (not links to the host) of busybox, node and its libraries, and the users", () => {
    const root = store.rootfsDir("test-minimal");
    const node = join(root, "usr/bin/node");
    expect(lstatSync(node).isFile()).toBe(true);
    expect(statSync(node).ino).not.toBe(statSync(process.execPath).ino);
    expect(lstatSync(join(root, "bin/busybox")).isFile()).toBe(true);
    // util-linux's setpriv, not busybox's applet (envd needs --reuid to start PTYs as `user`).
    expect(lstatSync(join(root, "usr/bin/setpriv")).isFile()).toBe(existsSync("/usr/bin/setpriv"));
    expect(existsSync(join(root, "bin/setpriv"))).toBe(!existsSync("/usr/bin/setpriv"));
    expect(lstatSync(join(root, "lib64/ld-linux-x86-64.so.2")).isFile()).toBe(
      process.arch === "x64",
    );
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).toMatch(/^root:x:0:0:/m);
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).toMatch(/^user:x:1000:1000:/m);
    expect(statSync(join(root, "home/user")).uid).toBe(1000);
    expect(statSync(join(root, "tmp")).mode & 0o7777).toBe(0o1777);
    expect(existsSync(join(root, "opt/wrenn/envd"))).toBe(true);
  });

  it("gets, lists and resolves layers; refuses evil and unknown names", async () => {
    expect((await store.getTemplate("test-minimal")).name).toBe("test-minimal");
    expect((await store.listTemplates()).map((t) => t.name)).toEqual(["test-minimal"]);
    expect(await store.templateLayers("test-minimal")).toEqual([store.rootfsDir("test-minimal")]);
    await expect(store.getTemplate("../test-minimal")).rejects.toMatchObject({
      code: "invalid_argument",
    });
    await expect(store.ensureTemplate("..")).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(store.ensureTemplate("nope")).rejects.toMatchObject({ code: "not_found" });
    await expect(store.deleteTemplate("test-minimal")).rejects.toMatchObject({
      code: "failed_precondition",
    });
  });

  it("writes snapshot templates stacked on their parent, keeping whiteouts; guards deletion", async () => {
    const upper = join(agentDir, "upper");
    mkdirSync(join(upper, "home/user"), { recursive: true });
    writeFileSync(join(upper, "home/user/hello.txt"), "hi");
    execFileSync("mknod", [join(upper, "gone"), "c", "0", "0"]); // an overlay whiteout
    const snap = await store.writeSnapshotTemplate({
      name: "snap1",
      parent: "test-minimal",
      fromDir: upper,
      vcpus: 2,
      memoryMb: 512,
      diskSizeMb: 1024,
    });
    expect(snap).toMatchObject({
      kind: "snapshot",
      layers: ["snap1", "test-minimal"],
      vcpus: 2,
      memoryMb: 512,
      diskSizeMb: 1024,
    });
    expect(await store.getTemplate("snap1")).toEqual(snap);
    expect(await store.templateLayers("snap1")).toEqual([
      store.rootfsDir("snap1"),
      store.rootfsDir("test-minimal"),
    ]);
    const whiteout = statSync(join(store.rootfsDir("snap1"), "gone"));
    expect(whiteout.isCharacterDevice() && whiteout.rdev === 0).toBe(true);
    expect(readFileSync(join(store.rootfsDir("snap1"), "home/user/hello.txt"), "utf8")).toBe("hi");

    const snap2 = await store.writeSnapshotTemplate({
      name: "snap2",
      parent: "snap1",
      fromDir: upper,
      vcpus: 1,
      memoryMb: 256,
      diskSizeMb: 512,
    });
    expect(snap2.layers).toEqual(["snap2", "snap1", "test-minimal"]);
    await expect(
      store.writeSnapshotTemplate({
        name: "snap2",
        parent: "snap1",
        fromDir: upper,
        vcpus: 1,
        memoryMb: 1,
        diskSizeMb: 1,
      }),
    ).rejects.toMatchObject({ code: "already_exists" });
    await expect(
      store.writeSnapshotTemplate({
        name: "../evil",
        parent: "snap1",
        fromDir: upper,
        vcpus: 1,
        memoryMb: 1,
        diskSizeMb: 1,
      }),
    ).rejects.toMatchObject({ code: "invalid_argument" });

    await expect(store.deleteTemplate("snap1")).rejects.toMatchObject({
      code: "failed_precondition",
    });
    await store.deleteTemplate("snap2");
    await store.deleteTemplate("snap1");
    await expect(store.getTemplate("snap1")).rejects.toMatchObject({ code: "not_found" });
    expect(readdirSync(store.dir)).toEqual(["test-minimal"]);
  });

  it("removes interrupted builds, unmounting (never emptying) mounts left inside", async () => {
    const debris = join(store.dir, ".build-base-dead");
    const mounted = join(debris, "rootfs/proc");
    mkdirSync(mounted, { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "tmpfs", mounted]);
    try {
      writeFileSync(join(mounted, "keep"), "x");
      await store.removeDebris();
      expect(existsSync(debris)).toBe(false);
    } finally {
      if (readFileSync("/proc/self/mountinfo", "utf8").includes(mounted)) {
        execFileSync("umount", [mounted]);
      }
    }
  });
});

// Downloads ~100 MB from Debian's mirror and takes minutes: CI opts in.
describe.skipIf(process.env.WRENN_TEST_BASE_TEMPLATE !== "1")(
  "base template (debootstrap; set WRENN_TEST_BASE_TEMPLATE=1)",
  () => {
    const fx = new SandboxFixture();
    let store: TemplateStore;
    afterAll(() => fx.cleanup());

    let progress: string[] = [];
    beforeAll(async () => {
      progress = [];
      store = new TemplateStore({ agentDir: join(fx.dir, "agent") });
      const started = Date.now();
      const info = await store.ensureTemplate("base", { onProgress: (m) => progress.push(m) });
      console.log(
        `base template: ${Math.round((Date.now() - started) / 1000)} s, ${Math.round(info.sizeBytes / 2 ** 20)} MiB`,
      );
    }, 1_800_000);

    it("streamed debootstrap's progress and has root, user 1000 and Node >= 18", async () => {
      expect(progress.some((line) => line.startsWith("I: Retrieving"))).toBe(true);
      const root = store.rootfsDir("base");
      const passwd = readFileSync(join(root, "etc/passwd"), "utf8");
      expect(passwd).toMatch(/^root:x:0:0:/m);
      expect(passwd).toMatch(/^user:x:1000:1000:.*:\/home\/user:\/bin\/bash$/m);
      expect(readdirSync(join(root, "var/lib/apt/lists")).length).toBe(0);
      const out = await fx.run(
        [
          'node -e \'console.log("node", process.versions.node.split(".")[0])\'',
          `python3 -c 'import ctypes; libc = ctypes.CDLL(None, use_errno=True); print("keyctl", libc.syscall(${syscallNumber(hostArch(), "keyctl")}, 0, -1, 0), ctypes.get_errno())'`,
          "setpriv --reuid=1000 --regid=1000 --clear-groups grep ^CapEff /proc/self/status",
          ...DEBIAN_PACKAGES.filter(
            (p) => !["ca-certificates", "procps", "iproute2"].includes(p),
          ).map((p) => `command -v ${p} >/dev/null && echo has ${p}`),
        ].join("; "),
        {
          rootfsDir: fx.overlayRoot(await store.templateLayers("base")),
          netnsPath: fx.netns(),
          cgroupProcsFiles: [],
          envdDir: fx.emptyEnvdDir,
          hostname: "sbx-base",
        },
      );
      expect(Number(/^node (\d+)$/m.exec(out)?.[1])).toBeGreaterThanOrEqual(18);
      expect(out).toMatch(/^keyctl -1 1$/m); // EPERM from the filter
      expect(out).toMatch(/^CapEff:\s+0+$/m);
      for (const p of ["python3", "nodejs", "git", "curl"]) expect(out).toContain(`has ${p}`);
    });
  },
);
