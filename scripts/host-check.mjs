// The host check of `npm start`: `wrenn doctor`'s lines (kernel features and host programs, one
// pass/fail line each), then missing Debian packages installed on request. On Debian or Ubuntu as
// root it offers `apt-get install` (`--yes` or WRENN_INSTALL_DEPS=1: without asking); elsewhere it
// prints the exact command.
import { execFile, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline/promises";
import { promisify } from "node:util";

const MARK = { ok: "✓", warn: "!", fail: "✗" };

/** `wrenn doctor --json` (exit code 1 only says something failed; the report says what). */
async function doctor() {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["packages/cli/bin/run.cjs", "doctor", "--json"],
    { env: { ...process.env, NO_COLOR: "1" } },
  ).catch((err) => err);
  return JSON.parse(stdout);
}

function debianLike() {
  try {
    const release = readFileSync("/etc/os-release", "utf8");
    return /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(release);
  } catch {
    return false;
  }
}

async function ask(question) {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^(y|yes|)$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/**
 * Prints the checks; resolves when the host can run Wrenn (installing packages if allowed), or
 * exits with the command to run. `template` decides whether debootstrap is needed (`base`).
 */
export async function checkHost({ template, assumeYes, verbose }) {
  let report = await doctor();
  const needed = (r) => [
    ...new Set(
      r.checks.flatMap((c) =>
        c.status === "fail" ||
        (c.name === "debootstrap" && template === "base" && c.status !== "ok")
          ? (c.packages ?? [])
          : [],
      ),
    ),
  ];
  const print = (r) => {
    const width = Math.max(...r.checks.map((c) => c.name.length));
    for (const c of r.checks) console.log(`${MARK[c.status]} ${c.name.padEnd(width)}  ${c.detail}`);
  };
  let packages = needed(report);
  if (verbose || !report.ok || packages.length > 0) print(report);
  if (packages.length > 0) {
    const command = `apt-get install -y ${packages.join(" ")}`;
    const root = process.getuid?.() === 0;
    if (!debianLike() || !root) {
      console.error(
        `\nMissing host packages. Install them with:\n  ${root ? "" : "sudo "}${command}`,
      );
      process.exit(1);
    }
    const yes =
      assumeYes ||
      (process.stdin.isTTY &&
        (await ask(`\nMissing: ${packages.join(", ")}. Run \`${command}\` now? [Y/n] `)));
    if (!yes) {
      console.error(
        `\nMissing host packages. Install them with:\n  ${command}\n(or run \`npm start -- --yes\`, or set WRENN_INSTALL_DEPS=1, to install them unattended)`,
      );
      process.exit(1);
    }
    for (const args of [
      ["update", "-qq"],
      ["install", "-y", ...packages],
    ]) {
      const { status } = spawnSync("apt-get", args, {
        stdio: "inherit",
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      });
      if (status !== 0) {
        console.error(`\n\`apt-get ${args.join(" ")}\` failed (exit ${status}).`);
        process.exit(1);
      }
    }
    report = await doctor();
    packages = needed(report);
    print(report);
  }
  if (!report.ok || packages.length > 0) {
    console.error(
      "\nThis host cannot run sandboxes yet: fix the ✗ lines above (`wrenn doctor` says how).",
    );
    process.exit(1);
  }
}
