import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

// One real PostgreSQL for the whole run: a throwaway cluster in a temp dir, reachable only
// through a Unix socket inside that dir (listen_addresses=''), removed at teardown.

declare module "vitest" {
  export interface ProvidedContext {
    /** Admin URL of the test cluster; undefined only when WRENN_TEST_SKIP_POSTGRES=1. */
    postgresAdminUrl: string | undefined;
  }
}

const INSTALL_HINT = "apt-get install -y postgresql";

function findPostgresBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] && join(root, versions[0], "bin");
}

export default function setup(project: TestProject): (() => void) | undefined {
  if (process.env.WRENN_TEST_SKIP_POSTGRES === "1") {
    console.warn("[wrenn/server] PostgreSQL half SKIPPED: WRENN_TEST_SKIP_POSTGRES=1 is set");
    project.provide("postgresAdminUrl", undefined);
    return undefined;
  }
  const bin = findPostgresBin();
  if (!bin) {
    throw new Error(
      `PostgreSQL binaries not found under /usr/lib/postgresql: install them with \`${INSTALL_HINT}\` ` +
        "(or set WRENN_TEST_SKIP_POSTGRES=1 to skip the PostgreSQL half explicitly)",
    );
  }

  const dir = mkdtempSync(join(tmpdir(), "wrenn-pg-"));
  const data = join(dir, "data");
  const socketDir = join(dir, "sock");
  mkdirSync(socketDir);
  // initdb refuses to run as root: the cluster belongs to the `postgres` user the package made.
  const asRoot = process.getuid?.() === 0;
  const runAs = (cmd: string, args: string[]) =>
    execFileSync(asRoot ? "runuser" : cmd, asRoot ? ["-u", "postgres", "--", cmd, ...args] : args, {
      stdio: "pipe",
    });
  const port = 5432;
  let started = false;
  const teardown = () => {
    if (started) {
      try {
        runAs(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"]);
      } catch (err) {
        console.error("[wrenn/server] stopping the test PostgreSQL failed:", err);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (asRoot) {
      const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
      const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
      chownSync(dir, uid, gid);
      chownSync(socketDir, uid, gid);
    }
    runAs(join(bin, "initdb"), [
      "-D",
      data,
      "-U",
      "postgres",
      "-A",
      "trust",
      "-E",
      "UTF8",
      "--no-sync",
    ]);
    runAs(join(bin, "pg_ctl"), [
      "-D",
      data,
      "-l",
      join(dir, "postgres.log"),
      "-w",
      "-o",
      `-k ${socketDir} -p ${port} -c listen_addresses='' -c fsync=off -c synchronous_commit=off`,
      "start",
    ]);
    started = true;
  } catch (err) {
    teardown();
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`starting the test PostgreSQL failed: ${String(err)}\n${stderr}`);
  }
  project.provide(
    "postgresAdminUrl",
    `postgres://postgres@localhost/postgres?host=${encodeURIComponent(socketDir)}&port=${port}`,
  );
  return teardown;
}
