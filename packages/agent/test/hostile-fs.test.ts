import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import {
  chmod,
  lstat,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultEnvdDir } from "../src/config/index.js";
import { ENVD_MOUNT_DIR } from "../src/launcher/index.js";
import { type HostileSandbox, hostileRuntime } from "./fixtures/hostile-runtime.js";

const PROBE_SOURCE = join(import.meta.dirname, "fixtures/syscall-probe.c");
const hasGcc = (() => {
  try {
    execFileSync("gcc", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/** `name errno` lines of the syscall probe as a map. */
function probeResults(out: string): Record<string, number> {
  return Object.fromEntries(
    out
      .trim()
      .split("\n")
      .map((l) => l.split(" "))
      .map(([k, v]) => [k, Number(v)]),
  );
}

/** sha256 of every regular file under `dir` (symlinks by target), keyed by relative path. */
async function treeDigest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    for (const name of await readdir(join(dir, rel))) {
      const path = join(dir, rel, name);
      const st = await lstat(path);
      if (st.isDirectory()) await walk(join(rel, name));
      else if (st.isSymbolicLink()) out[join(rel, name)] = `-> ${await readlink(path)}`;
      else if (st.isFile())
        out[join(rel, name)] = createHash("sha256")
          .update(await readFile(path))
          .digest("hex");
    }
  };
  await walk("");
  return out;
}

describe("hostile sandbox: host files, processes, privileges", { timeout: 120_000 }, () => {
  const hx = hostileRuntime({ netBase: 16 });
  // A host secret the sandbox must never see, and a host dir it must never change.
  const secret = `host-secret-${randomBytes(8).toString("hex")}`;
  let hostDir: string;
  let marker: string;
  let a: HostileSandbox;
  let b: HostileSandbox;
  let hostSleeper: ReturnType<typeof spawn> | undefined;

  beforeAll(async () => {
    hostDir = await mkdtemp(join(tmpdir(), "wrenn-hostile-host-"));
    marker = join(hostDir, "marker.txt");
    await writeFile(marker, secret, { mode: 0o644 });
    // World-readable, so only isolation (not file modes) keeps uid 1000 out.
    await chmod(hostDir, 0o755);
    hostSleeper = spawn("sleep", ["600"], { stdio: "ignore" });
    // Room for copies of node (about 100 MiB) in /tmp; the image is sparse.
    [a, b] = await Promise.all([hx.create("fs-a", { diskSizeMb: 512 }), hx.create("fs-b")]);
  }, 120_000);

  afterAll(async () => {
    hostSleeper?.kill("SIGKILL");
    if (hostDir) await rm(hostDir, { recursive: true, force: true });
  });

  it("sees only its own processes; /proc/1 is its own init; host pids cannot be signalled", async () => {
    const sleeper = hostSleeper!.pid!;
    const res = await a.root.sh(
      [
        "echo pids $(ls /proc | grep -E '^[0-9]+$')",
        "echo init $(tr '\\0' ' ' < /proc/1/cmdline)",
        "echo rootfs $(ls /proc/1/root/opt/wrenn)",
        `kill -0 ${sleeper} 2>/dev/null; echo kill0=$?`,
        `kill -9 ${sleeper} 2>/dev/null; echo kill9=$?`,
        `kill -9 ${process.pid} 2>/dev/null; echo killtest=$?`,
        `ls /proc/${process.pid} >/dev/null 2>&1; echo seehost=$?`,
      ].join("; "),
    );
    expect(res.exitCode).toBe(0);
    const pids = /^pids (.*)$/m.exec(res.stdout)![1]!.split(" ").map(Number);
    // bwrap's init, envd, this shell and its pipeline: a handful of small pids.
    expect(pids.length).toBeLessThan(12);
    expect(Math.max(...pids)).toBeLessThan(100);
    expect(pids).not.toContain(sleeper);
    const hostInit = (await readFile("/proc/1/cmdline", "utf8")).replaceAll("\0", " ").trim();
    expect(res.stdout).toMatch(/^init bwrap /m);
    expect(res.stdout).not.toContain(`init ${hostInit}\n`);
    expect(res.stdout).toMatch(/^rootfs envd$/m);
    expect(res.stdout).toMatch(/^kill0=1$/m);
    expect(res.stdout).toMatch(/^kill9=1$/m);
    expect(res.stdout).toMatch(/^killtest=1$/m);
    // Both host processes are still alive.
    expect(() => process.kill(sleeper, 0)).not.toThrow();
    expect(hostSleeper!.exitCode).toBeNull();
  });

  it("inherits nothing of its launch: no descriptor beyond stdio, no WRENN_ENVD_* variable", async () => {
    // envd's ready pipe (fd 5) and its access token are envd's alone, gone before it serves.
    const res = await a.root.sh("ls /proc/$$/fd; echo vars $(env | grep -c '^WRENN_ENVD_')");
    const lines = res.stdout.trim().split("\n");
    expect(lines.slice(0, -1).sort()).toEqual(["0", "1", "2"]);
    expect(lines.at(-1)).toBe("vars 0");
  });

  it("cannot read host files through /proc roots and cwds, symlinks or absolute paths", async () => {
    for (const env of [a.user, a.root]) {
      const res = await env.sh(
        [
          `ln -s ${marker} /tmp/to-marker-$$; cat /tmp/to-marker-$$`,
          `ln -s /etc/shadow /tmp/to-shadow-$$; cat /tmp/to-shadow-$$`,
          `cat ${marker} /etc/shadow`,
          `for p in /proc/[0-9]*; do cat $p/root${marker} $p/cwd/marker.txt $p/root/etc/shadow; done`,
          `cat /proc/self/root${marker} /proc/1/root${marker} /proc/1/root/../../..${marker}`,
          `cd /proc/1/cwd && cd ../../../.. && cat .${marker}`,
          "echo done",
        ].join("; "),
      );
      expect(res.stdout).toMatch(/done\n$/);
      expect(res.stdout + res.stderr).not.toContain(secret);
      expect(res.stdout).not.toMatch(/^root:/m);
    }
  });

  it("cannot write /proc/sys, /proc/sysrq-trigger, read /proc/kcore or /dev/mem, or see /sys", async () => {
    const watched = [
      "/proc/sys/kernel/core_pattern",
      "/proc/sys/kernel/sysrq",
      "/proc/sys/vm/swappiness",
      "/proc/sys/kernel/modprobe",
      "/proc/sys/kernel/randomize_va_space",
      "/proc/sys/fs/suid_dumpable",
      "/proc/sys/vm/overcommit_memory",
    ];
    // Kernels differ in which of these they have (this one has no modules, no sysrq).
    const present = watched.filter((p) => existsSync(p));
    expect(present).toContain("/proc/sys/kernel/core_pattern");
    const before = await Promise.all(present.map((p) => readFile(p, "utf8")));
    for (const env of [a.user, a.root]) {
      const res = await env.sh(
        [
          // Each writes the current value back, so a broken wall changes nothing on this host;
          // the exit status tells. A file this kernel lacks fails too: none may succeed.
          ...present.map(
            (p) => `v=$(cat ${p}) && echo "$v" > ${p}; echo ${p.split("/").at(-1)}=$?`,
          ),
          // 'h' only prints help to the kernel log: harmless if the wall ever fell.
          "echo h > /proc/sysrq-trigger; echo sysrq_trigger=$?",
          "head -c 16 /proc/kcore > /dev/null; echo kcore=$?",
          "head -c 16 /dev/mem > /dev/null; echo mem=$?",
          "dmesg > /dev/null; echo dmesg=$?",
          "echo sys=$(ls -A /sys | wc -l)",
          "echo x > /sys/kernel/uevent_helper; echo sys_write=$?",
        ].join("; "),
      );
      for (const key of [
        ...present.map((p) => p.split("/").at(-1)),
        "sysrq_trigger",
        "kcore",
        "mem",
        "dmesg",
        "sys_write",
      ]) {
        expect(res.stdout, key).toMatch(new RegExp(`^${key}=[1-9]\\d*$`, "m"));
      }
      expect(res.stdout).toMatch(/^sys=0$/m);
    }
    expect(await Promise.all(present.map((p) => readFile(p, "utf8")))).toEqual(before);
  });

  it("has no host devices and cannot make any (mknod, loop devices)", async () => {
    const res = await a.root.sh(
      [
        "echo blk $(find /dev -type b)",
        "ls /dev/sda /dev/vda /dev/nvme0n1 /dev/mem /dev/kmem /dev/loop0 /dev/loop-control 2>/dev/null; echo hostdevs=$?",
        "mknod /tmp/sda b 8 0; echo mknod_blk=$?",
        "mknod /tmp/mem c 1 1; echo mknod_mem=$?",
        "mknod /tmp/loop b 7 0; echo mknod_loop=$?",
        "echo img > /tmp/img; losetup /dev/loop0 /tmp/img; echo losetup=$?",
        "echo loops $(ls /dev | grep -c loop)",
      ].join("; "),
    );
    expect(res.stdout).toMatch(/^blk$/m);
    expect(res.stdout).toMatch(/^loops 0$/m);
    for (const key of ["hostdevs", "mknod_blk", "mknod_mem", "mknod_loop", "losetup"]) {
      expect(res.stdout, key).toMatch(new RegExp(`^${key}=[1-9]\\d*$`, "m"));
    }
  });

  it("cannot mount, remount, bind, chroot, pivot_root or enter other namespaces", async () => {
    for (const env of [a.user, a.root]) {
      const res = await env.sh(
        [
          "mkdir -p /tmp/m",
          "mount -t proc proc /tmp/m; echo proc=$?",
          "mount -t tmpfs none /tmp/m; echo tmpfs=$?",
          "mount -t sysfs none /tmp/m; echo sysfs=$?",
          "mount --bind / /tmp/m; echo bind=$?",
          "mount -o remount,rw /; echo remount_root=$?",
          `mount -o remount,rw ${ENVD_MOUNT_DIR}; echo remount_envd=$?`,
          `umount ${ENVD_MOUNT_DIR}; echo umount_envd=$?`,
          "chroot /tmp /bin/true; echo chroot=$?",
          "pivot_root /tmp /tmp/m; echo pivot_root=$?",
          "unshare -m true; echo unshare_mount=$?",
          "unshare -U true; echo unshare_user=$?",
          "nsenter -t 1 -m true; echo nsenter=$?",
          "ip addr add 10.99.0.1/32 dev lo; echo ip_addr=$?",
        ].join("; "),
      );
      for (const key of [
        "proc",
        "tmpfs",
        "sysfs",
        "bind",
        "remount_root",
        "remount_envd",
        "umount_envd",
        "chroot",
        "pivot_root",
        "unshare_mount",
        "unshare_user",
        "nsenter",
        "ip_addr",
      ]) {
        expect(res.stdout, key).toMatch(new RegExp(`^${key}=[1-9]\\d*$`, "m"));
      }
    }
    // The envd directory is still mounted where it was, unchanged.
    const res = await a.root.sh(`ls ${ENVD_MOUNT_DIR}`);
    expect(res.stdout).toMatch(/envd\.js/);
  });

  it("cannot write the envd bundle mount (read-only, even for root)", async () => {
    const envdDir = defaultEnvdDir();
    const before = await treeDigest(envdDir);
    for (const env of [a.user, a.root]) {
      const res = await env.sh(
        [
          `touch ${ENVD_MOUNT_DIR}/pwn; echo touch=$?`,
          `echo '// pwn' >> ${ENVD_MOUNT_DIR}/envd.js; echo append=$?`,
          `rm -f ${ENVD_MOUNT_DIR}/envd.js; echo rm=$?`,
          `chmod 777 ${ENVD_MOUNT_DIR}; echo chmod=$?`,
          `grep -E ' ${ENVD_MOUNT_DIR} ' /proc/self/mountinfo`,
        ].join("; "),
      );
      for (const key of ["touch", "append", "rm", "chmod"]) {
        expect(res.stdout, key).toMatch(new RegExp(`^${key}=[1-9]\\d*$`, "m"));
      }
      expect(res.stdout).toMatch(new RegExp(` ${ENVD_MOUNT_DIR} ro[, ]`));
    }
    expect(await treeDigest(envdDir)).toEqual(before);
  });

  it("writes to template files land in its upper layer only; the shared lower and other sandboxes are unchanged", async () => {
    const lower = join(hx.dir, "templates", "test-minimal", "rootfs");
    const before = await treeDigest(lower);
    const res = await a.root.sh(
      [
        "echo 'pwn:x:0:0::/:/bin/sh' >> /etc/passwd",
        "rm /etc/group",
        "echo pwned > /usr/bin/planted",
        "chmod 4755 /etc/hosts",
        "echo ok",
      ].join(" && "),
    );
    expect(res, res.stderr).toMatchObject({ exitCode: 0, stdout: "ok\n" });
    expect(await treeDigest(lower)).toEqual(before);
    const upper = join(hx.dir, "sandboxes", a.id, "storage", "disk", "upper");
    expect(await readFile(join(upper, "etc/passwd"), "utf8")).toContain("pwn:x:0:0");
    expect(existsSync(join(upper, "usr/bin/planted"))).toBe(true);
    // The merged root is mounted on the host too: a setuid file planted there does nothing.
    const merged = join(hx.dir, "sandboxes", a.id, "storage", "rootfs");
    const mount = (await readFile("/proc/self/mountinfo", "utf8"))
      .split("\n")
      .find((line) => line.split(" ")[4] === merged);
    expect(mount?.split(" ")[5]).toMatch(/(^|,)nosuid(,|$)/);
    expect(mount?.split(" ")[5]).toMatch(/(^|,)nodev(,|$)/);
    const other = await b.root.sh(
      "grep -c pwn /etc/passwd; test -f /etc/group && echo group; test -e /usr/bin/planted || echo clean; stat -c %a /etc/hosts",
    );
    expect(other.stdout).toBe("0\ngroup\nclean\n644\n");
  });

  it("a setuid-root binary gives uid 1000 nothing (no_new_privs); uid 1000 has no capabilities", async () => {
    const setup = await a.root.sh(
      "mkdir /tmp/suid && cp /bin/busybox /tmp/suid/busybox && chmod 4755 /tmp/suid/busybox && cp /usr/bin/node /tmp/suid/node && chmod 4755 /tmp/suid/node && echo ok",
    );
    expect(setup.stdout).toBe("ok\n");
    const res = await a.user.sh(
      "id -u; /tmp/suid/busybox id -u; /tmp/suid/node -p 'process.geteuid()'; /tmp/suid/busybox cat /root/x 2>&1; grep -E '^(Cap(Inh|Prm|Eff|Amb)|NoNewPrivs|Seccomp):' /proc/self/status",
    );
    const lines = res.stdout.split("\n");
    expect(lines[0]).toBe("1000");
    expect(lines[1]).toBe("1000");
    expect(lines[2]).toBe("1000");
    expect(res.stdout).toMatch(/Permission denied/);
    for (const cap of ["CapPrm", "CapEff", "CapAmb"]) {
      expect(res.stdout).toMatch(new RegExp(`^${cap}:\\s+0{16}$`, "m"));
    }
    // The inheritable set stays (envd's, within the bounding set) but is inert: no_new_privs
    // ignores file capabilities and no one can set them (CAP_SETFCAP is outside the bound).
    expect(res.stdout).toMatch(/^CapInh:\s+0{14}[0-9a-f]{2}$/m);
    expect(res.stdout).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(res.stdout).toMatch(/^Seccomp:\s+2$/m);
    // The sandbox's root is not host root: a small bounding set, no_new_privs, the filter.
    const root = await a.root.sh("grep -E '^(CapBnd|NoNewPrivs):' /proc/self/status");
    expect(root.stdout).toMatch(/^CapBnd:\s+00000000000000eb$/m);
    expect(root.stdout).toMatch(/^NoNewPrivs:\s+1$/m);
  });

  it("cannot load kernel modules", async () => {
    // Without /proc/modules this kernel has no module support at all; the calls must fail still.
    const modules = () => readFile("/proc/modules", "utf8").catch(() => "");
    const before = await modules();
    const res = await a.root.sh(
      "printf '\\177ELF' > /tmp/x.ko; insmod /tmp/x.ko; echo insmod=$?; modprobe dummy; echo modprobe=$?",
    );
    expect(res.stdout).toMatch(/^insmod=[1-9]\d*$/m);
    expect(res.stdout).toMatch(/^modprobe=[1-9]\d*$/m);
    expect(await modules()).toBe(before);
  });

  describe.skipIf(!hasGcc)("syscalls the filter denies (static probe; needs gcc)", () => {
    let probe: Buffer;
    beforeAll(async () => {
      const out = join(hostDir, "probe");
      execFileSync("gcc", ["-static", "-O1", "-o", out, PROBE_SOURCE]);
      probe = await readFile(out);
    });

    const denied = [
      "unshare_user",
      "unshare_mount",
      "clone_newuser",
      "keyctl",
      "add_key",
      "bpf",
      "name_to_handle_at",
      "open_by_handle_at",
      "init_module",
      "finit_module",
      "mount",
      "chroot",
      "pivot_root",
      "setns",
      "perf_event_open",
      "userfaultfd",
      "process_vm_readv",
    ];
    const EPERM = 1;
    const ENOSYS = 38;

    it("work on this host (control)", () => {
      const out = execFileSync(join(hostDir, "probe"), [
        "unshare_user",
        "keyctl",
        "add_key",
        "name_to_handle_at",
      ]).toString();
      expect(probeResults(out)).toEqual({
        unshare_user: 0,
        keyctl: 0,
        add_key: 0,
        name_to_handle_at: 0,
      });
    });

    it("fail with EPERM (ENOSYS for clone3/io_uring) for uid 1000 and for the sandbox's root", async () => {
      const up = await a.root.upload("/tmp/probe", probe);
      expect(up.status).toBe(200);
      await a.root.sh("chmod 755 /tmp/probe");
      const envdPid = (await a.root.sh("pidof node")).stdout.trim().split(" ")[0];
      expect(envdPid).toMatch(/^\d+$/);
      for (const env of [a.user, a.root]) {
        const res = await env.sh(
          `/tmp/probe ${[...denied, "clone3", "io_uring_setup", `ptrace:${envdPid}`].join(" ")}`,
        );
        expect(res.exitCode).toBe(0);
        const got = probeResults(res.stdout);
        expect(got).toEqual({
          ...Object.fromEntries(denied.map((name) => [name, EPERM])),
          clone3: ENOSYS,
          io_uring_setup: ENOSYS,
          [`ptrace:${envdPid}`]: EPERM,
        });
      }
      // And uid 1000 cannot read envd's memory or environment through /proc either.
      const peek = await a.user.sh(
        `head -c 1 /proc/${envdPid}/environ; echo environ=$?; head -c 1 /proc/${envdPid}/mem; echo mem=$?`,
      );
      expect(peek.stdout).toMatch(/^environ=1$/m);
      expect(peek.stdout).toMatch(/^mem=1$/m);
    });
  });

  it("host-side copies never follow sandbox symlinks: envd download, snapshot, destroy", async () => {
    const victimDir = join(hostDir, "victim");
    execFileSync("mkdir", ["-p", victimDir]);
    await writeFile(join(victimDir, "keep.txt"), secret);
    const c = await hx.create("fs-links");
    const plant = await c.root.sh(
      [
        `ln -s ${marker} /home/user/to-marker`,
        "ln -s /etc/shadow /home/user/to-shadow",
        `ln -s ${victimDir} /home/user/to-victim`,
        "ln -s / /home/user/to-root",
        `ln ${ENVD_MOUNT_DIR}/envd.js /home/user/hardlink 2>/dev/null; true`,
        "echo ok",
      ].join(" && "),
    );
    expect(plant.stdout).toBe("ok\n");

    // envd resolves paths inside the sandbox: the host file is not there.
    for (const path of ["/home/user/to-marker", "/home/user/to-shadow"]) {
      const down = await c.user.download(path);
      const body = await down.text();
      expect(down.status, path).not.toBe(200);
      expect(body).not.toContain(secret);
      expect(body).not.toMatch(/^root:/m);
    }

    // The snapshot copies the links as links, never what they point to.
    const snap = `${c.id}-snap`;
    await hx.runtime.snapshot(c.id, snap);
    try {
      const layer = join(hx.dir, "templates", snap, "rootfs", "home", "user");
      for (const name of ["to-marker", "to-shadow", "to-victim", "to-root"]) {
        expect((await lstat(join(layer, name))).isSymbolicLink(), name).toBe(true);
      }
      const copied = await treeDigest(join(hx.dir, "templates", snap));
      expect(JSON.stringify(copied)).not.toContain(
        createHash("sha256").update(secret).digest("hex"),
      );

      // A sandbox from the snapshot still reads nothing of the host through them.
      const d = await hx.create("fs-from-snap", { template: snap });
      const res = await d.root.sh(
        "cat /home/user/to-marker /home/user/to-victim/keep.txt /home/user/to-shadow; echo done",
      );
      expect(res.stdout + res.stderr).not.toContain(secret);
      expect(res.stdout).toBe("done\n");
      await hx.runtime.destroy(d.id);
    } finally {
      await hx.runtime.deleteSnapshot(snap).catch(() => {});
    }

    // Uploads through a link write inside the sandbox, never the host file it names.
    for (const path of ["/home/user/to-marker", "/home/user/to-victim/keep.txt"]) {
      const up = await c.root.upload(path, "overwritten");
      expect([200, 400, 404], path).toContain(up.status);
    }
    expect(await readFile(marker, "utf8")).toBe(secret);
    expect(await readFile(join(victimDir, "keep.txt"), "utf8")).toBe(secret);

    // Destroy removes the sandbox's files, not what its links point to.
    await hx.runtime.destroy(c.id);
    expect(await readFile(marker, "utf8")).toBe(secret);
    expect(await readFile(join(victimDir, "keep.txt"), "utf8")).toBe(secret);
    expect(existsSync("/etc/shadow")).toBe(true);
  });
});
