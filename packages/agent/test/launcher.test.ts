import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentError } from "../src/errors.js";
import {
  ABSENT_SYSCALLS,
  DENIED_SYSCALLS,
  isSandboxAlive,
  killSandbox,
  readProcStat,
  type SeccompArch,
  type SockFilter,
  seccompFilterBytes,
  seccompProgram,
} from "../src/launcher/index.js";
import { syscallNumber } from "../src/launcher/seccomp.js";
import { TemplateStore } from "../src/template/index.js";
import { SandboxFixture, waitForExit } from "./fixtures/sandbox.js";

const ENVD_DIST = join(import.meta.dirname, "../../envd/dist/bundle");
const AUDIT_ARCH = { x64: 0xc000003e, arm64: 0xc00000b7, i386: 0x40000003 };
const RET_ALLOW = 0x7fff0000;
const RET_EPERM = 0x00050001;
const RET_ENOSYS = 0x00050026;
const RET_KILL = 0x80000000;
const CLONE_NEWUSER = 0x10000000;

/** "ready" once `ready` resolves, "no answer" after 10 s. */
const within = (ready: Promise<void>) =>
  Promise.race([ready.then(() => "ready"), sleep(10_000).then(() => "no answer")]);
const SIGCHLD = 17;

/** Runs a classic-BPF seccomp program on one syscall, as the kernel would. */
function evaluate(prog: SockFilter[], arch: number, nr: number, arg0 = 0): number {
  const data = Buffer.alloc(64);
  data.writeUInt32LE(nr >>> 0, 0);
  data.writeUInt32LE(arch >>> 0, 4);
  data.writeBigUInt64LE(BigInt(arg0), 16);
  let acc = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc]!;
    if (code === 0x20) acc = data.readUInt32LE(k);
    else if (code === 0x06) return k;
    else if (code === 0x15) pc += acc === k ? jt : jf;
    else if (code === 0x35) pc += acc >= k ? jt : jf;
    else if (code === 0x45) pc += (acc & k) !== 0 ? jt : jf;
    else throw new Error(`unexpected opcode ${code}`);
  }
  throw new Error("fell off the end of the program");
}

describe("seccomp filter", () => {
  for (const arch of ["x64", "arm64"] as SeccompArch[]) {
    const prog = seccompProgram(arch);
    const nr = (name: string) => syscallNumber(arch, name)!;

    it(`${arch}: checks the architecture first and kills other ABIs`, () => {
      expect(prog[0]).toEqual({ code: 0x20, jt: 0, jf: 0, k: 4 });
      expect(prog[1]!.code).toBe(0x15);
      expect(prog[1]!.k).toBe(AUDIT_ARCH[arch]);
      expect(prog.at(-1)).toEqual({ code: 0x06, jt: 0, jf: 0, k: RET_KILL });
      expect(evaluate(prog, AUDIT_ARCH.i386, 21)).toBe(RET_KILL);
      if (arch === "x64") expect(evaluate(prog, AUDIT_ARCH.x64, 0x40000000 + 165)).toBe(RET_KILL);
    });

    it(`${arch}: denies host-reaching syscalls, allows the rest`, () => {
      for (const name of DENIED_SYSCALLS) {
        const n = syscallNumber(arch, name);
        if (n !== undefined) expect(evaluate(prog, AUDIT_ARCH[arch], n), name).toBe(RET_EPERM);
      }
      for (const name of ABSENT_SYSCALLS) {
        expect(evaluate(prog, AUDIT_ARCH[arch], nr(name)), name).toBe(RET_ENOSYS);
      }
      // read, write, openat, close, execve, exit_group, mmap, futex
      const harmless = {
        x64: [0, 1, 257, 3, 59, 231, 9, 202],
        arm64: [63, 64, 56, 57, 221, 94, 222, 98],
      };
      for (const n of harmless[arch]) {
        expect(evaluate(prog, AUDIT_ARCH[arch], n), `syscall ${n}`).toBe(RET_ALLOW);
      }
    });

    it(`${arch}: clone and unshare only without namespace flags`, () => {
      const a = AUDIT_ARCH[arch];
      expect(evaluate(prog, a, nr("clone"), SIGCHLD)).toBe(RET_ALLOW);
      expect(evaluate(prog, a, nr("clone"), 0x3d0f00)).toBe(RET_ALLOW); // pthread_create's flags
      expect(evaluate(prog, a, nr("clone"), CLONE_NEWUSER | SIGCHLD)).toBe(RET_EPERM);
      expect(evaluate(prog, a, nr("unshare"), CLONE_NEWUSER)).toBe(RET_EPERM);
      expect(evaluate(prog, a, nr("unshare"), 0x00020000)).toBe(RET_EPERM); // CLONE_NEWNS
      expect(evaluate(prog, a, nr("unshare"), 0x00000400)).toBe(RET_ALLOW); // CLONE_FILES
    });
  }

  it("serialises to struct sock_filter[] (8 bytes each)", () => {
    const prog = seccompProgram("x64");
    const bytes = seccompFilterBytes("x64");
    expect(bytes.length).toBe(prog.length * 8);
    expect(bytes.readUInt16LE(8)).toBe(prog[1]!.code);
    expect(bytes.readUInt32LE(12)).toBe(prog[1]!.k);
  });

  const headers = {
    x64: "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
    arm64: "/usr/include/asm-generic/unistd.h",
  };
  for (const [arch, header] of Object.entries(headers) as [SeccompArch, string][]) {
    it.skipIf(!existsSync(header))(`${arch}: syscall numbers match ${header}`, () => {
      const text = readFileSync(header, "utf8");
      for (const name of [...DENIED_SYSCALLS, ...ABSENT_SYSCALLS, "clone", "unshare"]) {
        const m = new RegExp(`^#define __NR_${name}\\s+(\\d+)`, "m").exec(text);
        expect(syscallNumber(arch, name), name).toBe(m ? Number(m[1]) : undefined);
      }
    });
  }
});

describe("launchSandbox (real bwrap, namespaces, seccomp; needs root)", () => {
  const fx = new SandboxFixture();
  let lower: string;
  let netnsPath: string;
  const common = () => ({
    rootfsDir: fx.overlayRoot([lower]),
    netnsPath,
    cgroupProcsFiles: [],
    envdDir: fx.emptyEnvdDir,
    hostname: "sbx-test",
  });

  beforeAll(async () => {
    const store = new TemplateStore({ agentDir: join(fx.dir, "agent") });
    await store.ensureTemplate("test-minimal");
    lower = store.rootfsDir("test-minimal");
    netnsPath = fx.netns();
  });
  afterAll(() => fx.cleanup());

  it("runs as root with only the kept capabilities, no_new_privs and the filter", async () => {
    const out = await fx.run(
      "id -u; hostname; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status",
      common(),
    );
    const lines = out.split("\n");
    expect(lines[0]).toBe("0");
    expect(lines[1]).toBe("sbx-test");
    expect(out).toMatch(/CapEff:\s+00000000000000eb/);
    expect(out).toMatch(/CapBnd:\s+00000000000000eb/);
    expect(out).toMatch(/NoNewPrivs:\s+1/);
    expect(out).toMatch(/Seccomp:\s+2/);
  });

  it("a process started as uid 1000 (as envd does) has no capabilities", async () => {
    const js = `require("child_process").execFileSync("/bin/sh", ["-c", "id -u; grep ^Cap /proc/self/status"], { uid: 1000, gid: 1000, stdio: "inherit" })`;
    const out = await fx.run(`/usr/bin/node -e '${js}'`, common());
    expect(out).toMatch(/^1000\n/);
    expect(out).toMatch(/CapPrm:\s+0000000000000000/);
    expect(out).toMatch(/CapEff:\s+0000000000000000/);
    expect(out).toMatch(/CapAmb:\s+0000000000000000/);
  });

  it("sees only its own processes, no host devices, no sysfs, only its environment", async () => {
    const out = await fx.run(
      "echo pids $(ls /proc | grep -E '^[0-9]+$'); echo devs $(ls /dev); echo blk $(find /dev -type b); echo sys $(ls /sys); env | sort",
      { ...common(), envs: { WRENN_TEST: "yes" } },
    );
    const pids = /^pids (.*)$/m.exec(out)![1]!.split(" ").map(Number);
    // bwrap's init (1), the shell (2), and ls/grep of the pipeline.
    expect(Math.max(...pids)).toBeLessThan(10);
    expect(/^devs (.*)$/m.exec(out)![1]!.split(" ").sort()).toEqual([
      "core",
      "fd",
      "full",
      "null",
      "ptmx",
      "pts",
      "random",
      "shm",
      "stderr",
      "stdin",
      "stdout",
      "tty",
      "urandom",
      "zero",
    ]);
    expect(out).toMatch(/^blk$/m);
    expect(out).toMatch(/^sys$/m);
    const env = out.split("\n").filter((l) => /^[A-Z_]+=/.test(l));
    expect(env.map((l) => l.split("=")[0]).sort()).toEqual([
      "HOME",
      "PATH",
      "PWD",
      "SHLVL",
      "WRENN_ENVD_READY_FD",
      "WRENN_TEST",
    ]);
  });

  it("resolves ready on the first byte of its ready pipe, or once the sandbox ends without one", async () => {
    // Writes the pipe, then stays: ready comes from the byte, not from an exit.
    const { proc } = await fx.launch({
      ...common(),
      command: ["/bin/sh", "-c", 'printf 1 >&"$WRENN_ENVD_READY_FD"; exec sleep 60'],
    });
    expect(await within(proc.ready)).toBe("ready");
    expect(await isSandboxAlive(proc)).toBe(true);
    await killSandbox(proc);
    // Never writes it: ready comes when the sandbox ends (nobody waits in vain).
    const { proc: quiet } = await fx.launch({
      ...common(),
      command: ["/bin/sh", "-c", "sleep 0.2"],
    });
    expect(await within(quiet.ready)).toBe("ready");
  });

  it("denies host-reaching syscalls with EPERM (which work on the host without the filter)", async () => {
    // Control: the same user-namespace creation succeeds on this host outside a sandbox.
    execFileSync("unshare", ["--user", "true"]);
    const out = await fx.run(
      [
        "unshare -U true; echo userns=$?",
        "unshare -r true; echo userns_root=$?",
        "mount -t tmpfs none /mnt; echo mount=$?",
        "nsenter -t 1 -n true; echo setns=$?",
        "setpriv --reuid=1000 --regid=1000 --clear-groups unshare -U true; echo user_userns=$?",
      ].join("; "),
      common(),
    );
    expect(out).toMatch(/^userns=1$/m);
    expect(out).toMatch(/^userns_root=1$/m);
    expect(out).toMatch(/^mount=\d+$/m);
    expect(out).not.toMatch(/^mount=0$/m);
    expect(out).toMatch(/unshare\(0x10000000\): Operation not permitted/);
    expect(out).not.toMatch(/^setns=0$/m);
    expect(out).toMatch(/^user_userns=1$/m);
  });

  it("is born inside the given cgroups and sees them as its root", async () => {
    const cgroupProcsFiles = fx.cgroups();
    expect(cgroupProcsFiles.length).toBeGreaterThan(0);
    const { proc, logFile } = await fx.launch({
      ...common(),
      cgroupProcsFiles,
      command: ["/bin/sh", "-c", "cat /proc/self/cgroup; sleep 30"],
    });
    const leaf = cgroupProcsFiles[0]!.split("/").at(-2)!;
    // The bwrap process and everything below it (init, the shell) are in the cgroup.
    let members: number[] = [];
    for (let i = 0; i < 500 && members.length < 3; i++) {
      members = readFileSync(cgroupProcsFiles[0]!, "utf8").split("\n").filter(Boolean).map(Number);
      await sleep(5);
    }
    expect(members).toContain(proc.pid);
    expect(members.length).toBeGreaterThanOrEqual(3);
    expect(readFileSync(`/proc/${proc.pid}/cgroup`, "utf8")).toContain(leaf);
    while (!readFileSync(logFile, "utf8").includes("0::/")) await sleep(5);
    expect(readFileSync(logFile, "utf8")).not.toContain(leaf);
    await killSandbox(proc);
  });

  it("runs detached in its own session; kill removes every process of the sandbox", async () => {
    const { proc } = await fx.launch({
      ...common(),
      command: ["/bin/sh", "-c", "sleep 60 & sleep 60 & wait"],
    });
    expect(await isSandboxAlive(proc)).toBe(true);
    expect(await isSandboxAlive({ ...proc, startTime: proc.startTime + 1 })).toBe(false);
    expect(sessionOf(proc.pid)).toBe(proc.pid);
    let tree: number[] = [];
    for (let i = 0; i < 500 && tree.length < 4; i++) {
      tree = descendants(proc.pid);
      await sleep(5);
    }
    expect(tree.length).toBeGreaterThanOrEqual(4); // init, sh, two sleeps
    await killSandbox(proc);
    expect(await isSandboxAlive(proc)).toBe(false);
    for (const pid of tree) expect((await readProcStat(pid))?.state ?? "gone").toMatch(/gone|Z/);
    await killSandbox(proc); // already dead: a no-op
  });

  it("says why it could not start: in its log, or in the launch's error if it is gone at once", async () => {
    const cgroup = join(fx.dir, "no-such-cgroup", "cgroup.procs");
    const said = await fx.launch({ ...common(), cgroupProcsFiles: [cgroup] }).then(
      async ({ proc, logFile }) => {
        await waitForExit(proc);
        return readFileSync(logFile, "utf8");
      },
      (err: Error) => err.message,
    );
    expect(said).toContain(`wrenn-launch: cannot join cgroup ${cgroup}`);
  });

  it("writes its seccomp program once (root-only), and again only if the file went away", async () => {
    const quick = ["/bin/sh", "-c", "true"];
    const file = join(fx.dir, "seccomp.bpf");
    await fx.launch({ ...common(), command: quick });
    const first = statSync(file);
    expect(first.mode & 0o777).toBe(0o600);
    expect(readFileSync(file).equals(seccompFilterBytes())).toBe(true);
    await fx.launch({ ...common(), command: quick });
    expect(statSync(file).ino).toBe(first.ino);
    rmSync(file);
    const { proc, logFile } = await fx.launch({
      ...common(),
      command: ["/bin/sh", "-c", 'printf 1 >&"$WRENN_ENVD_READY_FD"; exec sleep 60'],
    });
    expect(await within(proc.ready)).toBe("ready");
    expect(readFileSync(file).equals(seccompFilterBytes())).toBe(true);
    expect(readFileSync(logFile, "utf8")).toBe("");
  });

  it("refuses bad environment names", async () => {
    await expect(fx.launch({ ...common(), envs: { "A=B": "x" } })).rejects.toMatchObject({
      code: "invalid_argument",
    } satisfies Partial<AgentError>);
  });

  it("serves HTTP inside the netns from the template's own node", async () => {
    const server = `require("http").createServer((q, s) => { s.writeHead(204); s.end(); }).listen(49983)`;
    const { proc } = await fx.launch({ ...common(), command: ["/usr/bin/node", "-e", server] });
    expect(await healthStatus(netnsPath)).toBe(204);
    await killSandbox(proc);
  });

  it.skipIf(!existsSync(join(ENVD_DIST, "envd.js")))(
    "runs the real envd as its first process; /health answers 204 inside the netns",
    async () => {
      const { proc, logFile } = await fx.launch({
        ...common(),
        envdDir: ENVD_DIST,
        command: undefined,
      });
      // envd says on its ready pipe that it listens; /health answers.
      expect(await within(proc.ready)).toBe("ready");
      const status = await healthStatus(netnsPath).catch((err) => {
        throw new Error(`${err}\nenvd log:\n${readFileSync(logFile, "utf8")}`);
      });
      expect(status).toBe(204);
      await killSandbox(proc);
    },
  );

  it("measures: bare bwrap vs the full launch (p50 over 30 runs, reported, not asserted)", async () => {
    const opts = common();
    const root = opts.rootfsDir;
    // Lingers 100 ms after "ready": launchSandbox rightly reports a sandbox whose first process
    // is already gone when it looks, which a bare `echo` sometimes is.
    const LINGER = ["/bin/sh", "-c", "echo ready; sleep 0.1"];
    // Time until the command runs (what sandbox creation waits for) and until it is gone
    // (includes namespace teardown).
    const bare = async () => {
      const t = performance.now();
      const child = spawn("bwrap", [
        "--bind",
        root,
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--unshare-pid",
        ...LINGER,
      ]);
      const started = await new Promise<number>((r) =>
        child.stdout.once("data", () => r(performance.now() - t)),
      );
      await new Promise((r) => child.once("exit", r));
      return [started, performance.now() - t] as const;
    };
    const full = async () => {
      const t = performance.now();
      const { proc, logFile } = await fx.launch({ ...opts, command: LINGER });
      while (statSync(logFile).size === 0) await sleep(0.2);
      const started = performance.now() - t;
      await waitForExit(proc);
      return [started, performance.now() - t] as const;
    };
    const measure = async (f: typeof bare) => {
      const runs: (readonly [number, number])[] = [];
      for (let i = 0; i < 30; i++) runs.push(await f());
      const p50 = (xs: number[]) => Math.round(xs.sort((a, b) => a - b)[15]! * 10) / 10;
      return { startP50: p50(runs.map((r) => r[0])), exitP50: p50(runs.map((r) => r[1])) };
    };
    const figures = { bareBwrap: await measure(bare), launchSandbox: await measure(full) };
    console.log("launch latency (ms)", JSON.stringify(figures));
    expect(figures.launchSandbox.startP50).toBeGreaterThan(0);
  });

  // Last: it ends this process's spawn helper.
  it("starts from the spawn helper, not a fork of the agent, outlives it, and falls back to Node's spawn", async () => {
    const stays = ["/bin/sh", "-c", 'printf 1 >&"$WRENN_ENVD_READY_FD"; exec sleep 60'];
    const { proc } = await fx.launch({ ...common(), command: stays });
    const helper = parentOf(proc.pid);
    expect(helper).not.toBe(process.pid);
    expect(readFileSync(`/proc/${helper}/comm`, "utf8").trim()).toBe("wrenn-spawn");
    expect(await within(proc.ready)).toBe("ready");
    // The agent going away takes its helper with it; the sandbox stays.
    process.kill(helper, "SIGKILL");
    await expect.poll(() => readProcStat(helper).then((s) => s?.state ?? "gone")).toMatch(/gone|Z/);
    expect(await isSandboxAlive(proc)).toBe(true);
    const { proc: second } = await fx.launch({ ...common(), command: stays });
    expect(parentOf(second.pid)).toBe(process.pid);
    expect(sessionOf(second.pid)).toBe(second.pid);
    expect(await within(second.ready)).toBe("ready");
    for (const p of [proc, second]) {
      await killSandbox(p);
      expect(await isSandboxAlive(p)).toBe(false);
    }
  });
});

function statFields(pid: number): string[] {
  return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
}
const parentOf = (pid: number) => Number(statFields(pid)[1]);
const sessionOf = (pid: number) => Number(statFields(pid)[3]);

/** GET /health on 127.0.0.1:49983 inside a netns, retried while the server starts. */
async function healthStatus(netnsPath: string): Promise<number> {
  const js = `fetch("http://127.0.0.1:49983/health").then((r) => console.log(r.status), () => console.log("down"))`;
  for (let i = 0; i < 200; i++) {
    const out = execFileSync("nsenter", [`--net=${netnsPath}`, process.execPath, "-e", js])
      .toString()
      .trim();
    if (out !== "down") return Number(out);
    await sleep(50);
  }
  throw new Error("nothing answered on :49983 in the sandbox netns");
}

function descendants(pid: number): number[] {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
    .split(" ")
    .filter(Boolean)
    .map(Number);
  return kids.flatMap((k) => [k, ...descendants(k)]);
}
