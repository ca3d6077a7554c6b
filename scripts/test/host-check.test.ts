import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// `npm start`'s offer to install missing host packages, for real: scripts/start.mjs runs as a
// process (on a pseudo-terminal when the test answers its prompt) in a private mount namespace
// where bwrap and debootstrap are hidden (a non-executable file bound over each, so `wrenn
// doctor` finds them missing) and, for the non-Debian case, /etc/os-release says Fedora. The host
// itself is never changed. apt-get is the boundary: a FAKE apt-get first on PATH records its
// arguments and installs nothing, so the script's second check still finds them missing and it
// stops before starting a server.

const ROOT = join(import.meta.dirname, "..", "..");
const MISSING = { bwrap: "bubblewrap", debootstrap: "debootstrap" };
const PACKAGES = Object.values(MISSING).join(" ");
const COMMAND = `apt-get install -y ${PACKAGES}`;

const skip =
  process.getuid?.() !== 0
    ? "hides host programs in a private mount namespace: run as root"
    : !existsSync(join(ROOT, "packages/cli/dist"))
      ? "the CLI is not built (npm run build)"
      : undefined;
if (skip) console.warn(`[scripts] host-check suite SKIPPED: ${skip}`);

interface Run {
  code: number | null;
  output: string;
  /** What the fake apt-get was called with, a line per call (empty: never called). */
  apt: string[];
}

describe.skipIf(skip)("npm start on a host that lacks packages", () => {
  let dir: string;
  let fakeBin: string;
  let blank: string;
  let fedora: string;
  let aptLog: string;
  /** Every place `wrenn doctor` would find the programs hidden here. */
  let targets: string[];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "wrenn-host-check-test-"));
    chmodSync(dir, 0o755); // the non-root run reads the fake's directory too
    fakeBin = join(dir, "bin");
    aptLog = join(dir, "apt-get.log");
    // Bound over each hidden program: there, but not executable.
    blank = join(dir, "blank");
    writeFileSync(blank, "");
    chmodSync(blank, 0o644);
    fedora = join(dir, "os-release");
    writeFileSync(fedora, 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n');
    chmodSync(fedora, 0o644);
    // Doctor searches PATH, then the sbin and bin directories.
    const dirs = [
      ...(process.env.PATH ?? "").split(delimiter),
      "/usr/local/sbin",
      "/usr/sbin",
      "/sbin",
      "/usr/bin",
      "/bin",
    ].filter(Boolean);
    targets = [
      ...new Set(
        Object.keys(MISSING).flatMap((bin) =>
          dirs.map((d) => join(d, bin)).filter((p) => existsSync(p)),
        ),
      ),
    ];
    mkFakeAptGet();
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The FAKE apt-get: records its arguments (and the DEBIAN_FRONTEND it got), exits 0. */
  function mkFakeAptGet() {
    mkdirSync(fakeBin, { recursive: true, mode: 0o755 });
    const fake = join(fakeBin, "apt-get");
    writeFileSync(
      fake,
      `#!/bin/sh\n# FAKE apt-get for the host-check test: records its arguments, installs nothing.\necho "DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> ${JSON.stringify(aptLog)}\nexit 0\n`,
    );
    chmodSync(fake, 0o755);
  }

  /**
   * `node scripts/start.mjs ...args` in its own mount namespace with the programs hidden; with
   * `answer`, on a pseudo-terminal (util-linux `script`) and the answer typed at the prompt.
   */
  async function start(
    opts: {
      args?: string[];
      env?: Record<string, string>;
      answer?: string;
      tty?: boolean;
      nonDebian?: boolean;
      nonRoot?: boolean;
    } = {},
  ): Promise<Run> {
    rmSync(aptLog, { force: true });
    const dataDir = mkdtempSync(join(dir, "data-"));
    chmodSync(dataDir, 0o755);
    const node = [process.execPath, "scripts/start.mjs", ...(opts.args ?? [])];
    const tty = opts.tty ?? opts.answer !== undefined;
    let cmd = tty ? ["script", "-qfec", node.join(" "), "/dev/null"] : node;
    if (opts.nonRoot)
      cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", ...cmd];
    const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
    const setup = [
      ...targets.map((t) => `mount --bind ${q(blank)} ${q(t)}`),
      ...(opts.nonDebian ? [`mount --bind ${q(fedora)} /etc/os-release`] : []),
      'exec "$@"',
    ].join(" && ");
    const child = spawn(
      "unshare",
      ["--mount", "--propagation", "private", "sh", "-c", setup, "hide", ...cmd],
      {
        cwd: ROOT,
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
        env: {
          ...process.env,
          PATH: `${fakeBin}${delimiter}${process.env.PATH ?? "/usr/bin:/bin"}`,
          SHELL: "/bin/sh",
          HOME: dataDir,
          WRENN_DATA_DIR: dataDir,
          // Never reached (the second check fails), but not the user's port if it were.
          WRENN_PORT: "1",
          NO_COLOR: "1",
          ...opts.env,
        },
      },
    );
    let output = "";
    let answered = false;
    const onData = (d: Buffer) => {
      output += d.toString("utf8");
      if (opts.answer !== undefined && !answered && output.includes("[Y/n]")) {
        answered = true;
        child.stdin?.write(`${opts.answer}\n`);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    const killer = setTimeout(() => {
      if (child.pid) process.kill(-child.pid, "SIGKILL");
    }, 45_000);
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    clearTimeout(killer);
    child.stdin?.destroy();
    rmSync(dataDir, { recursive: true, force: true });
    const apt = existsSync(aptLog) ? readFileSync(aptLog, "utf8").trim().split("\n") : [];
    return { code, output: output.replaceAll("\r", ""), apt };
  }

  it("offers the install on a terminal; no: prints the exact command, exits non-zero, runs nothing", async () => {
    const run = await start({ answer: "n" });
    expect(run.output).toContain(`✗ bubblewrap`);
    expect(run.output).toContain(
      `Missing: ${Object.values(MISSING).join(", ")}. Run \`${COMMAND}\` now? [Y/n]`,
    );
    expect(run.output).toContain(`Missing host packages. Install them with:\n  ${COMMAND}\n`);
    expect(run.output).toContain("npm start -- --yes");
    expect(run.code).toBe(1);
    expect(run.apt).toEqual([]);
  });

  it("yes at the prompt: apt-get update, then apt-get install -y with exactly those packages", async () => {
    const run = await start({ answer: "y" });
    expect(run.output).toContain("[Y/n]");
    expect(run.apt).toEqual([
      "DEBIAN_FRONTEND=noninteractive update -qq",
      `DEBIAN_FRONTEND=noninteractive install -y ${PACKAGES}`,
    ]);
    // The fake installed nothing: the second check says so, and no server starts.
    expect(run.output).toContain("This host cannot run sandboxes yet");
    expect(run.output).not.toContain("Wrenn is running");
    expect(run.code).toBe(1);
  });

  it("--yes and WRENN_INSTALL_DEPS=1 install without asking (no terminal needed)", async () => {
    for (const how of [{ args: ["--yes"] }, { env: { WRENN_INSTALL_DEPS: "1" } }]) {
      const run = await start(how);
      expect(run.output, JSON.stringify(how)).not.toContain("[Y/n]");
      expect(run.apt, JSON.stringify(how)).toEqual([
        "DEBIAN_FRONTEND=noninteractive update -qq",
        `DEBIAN_FRONTEND=noninteractive install -y ${PACKAGES}`,
      ]);
      expect(run.code).toBe(1);
    }
  });

  it("without a terminal and without --yes: the command only", async () => {
    const run = await start();
    expect(run.output).not.toContain("[Y/n]");
    expect(run.output).toContain(`Install them with:\n  ${COMMAND}\n`);
    expect(run.code).toBe(1);
    expect(run.apt).toEqual([]);
  });

  it("not Debian or Ubuntu: the exact command, no offer, even on a terminal", async () => {
    const run = await start({ tty: true, nonDebian: true });
    expect(run.output).not.toContain("[Y/n]");
    expect(run.output).toContain(`Missing host packages. Install them with:\n  ${COMMAND}\n`);
    expect(run.code).toBe(1);
    expect(run.apt).toEqual([]);
  });

  it("not root: the command with sudo, no offer, even on a terminal", async (ctx) => {
    // As nobody, who must be able to read the checkout (not so under a 0700 home directory).
    const readable = spawnSync(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "test", "-r", "scripts/start.mjs"],
      { cwd: ROOT },
    );
    if (readable.status !== 0) ctx.skip("the checkout is not readable by nobody");
    const run = await start({ tty: true, nonRoot: true });
    expect(run.output).not.toContain("[Y/n]");
    expect(run.output).toContain(`Install them with:\n  sudo ${COMMAND}\n`);
    expect(run.code).toBe(1);
    expect(run.apt).toEqual([]);
  });
});
