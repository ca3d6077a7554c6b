import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A throwaway PostgreSQL cluster: reachable only through a Unix socket in its own temp dir. */
export interface ThrowawayPostgres {
  url: string;
  /** Stops the cluster and removes it. */
  stop(): void;
  /** Stops the server only (`-m fast`: clients are cut off, as in a restart); data kept. */
  down(): void;
  /** Starts it again after `down`. */
  up(): void;
}

/** The newest installed server's bin dir (Debian's layout), or undefined when none is. */
export function postgresBinDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] && join(root, versions[0], "bin");
}

/** initdb + pg_ctl start as the `postgres` user (initdb refuses root), fsync off: for benches and tests, not a store. */
export function startThrowawayPostgres(bin: string): ThrowawayPostgres {
  const dir = mkdtempSync(join(tmpdir(), "wrenn-pg-throwaway-"));
  const data = join(dir, "data");
  const socketDir = join(dir, "sock");
  mkdirSync(socketDir);
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) =>
    execFileSync(asRoot ? "runuser" : cmd, asRoot ? ["-u", "postgres", "--", cmd, ...args] : args, {
      stdio: "pipe",
    });
  let started = false;
  const pgCtl = (args: string[]) => run(join(bin, "pg_ctl"), ["-D", data, ...args]);
  const stop = () => {
    if (started) pgCtl(["-m", "immediate", "-w", "stop"]);
    started = false;
    rmSync(dir, { recursive: true, force: true });
  };
  const up = () => {
    pgCtl([
      "-l",
      join(dir, "postgres.log"),
      "-w",
      "-o",
      `-k ${socketDir} -c listen_addresses='' -c fsync=off -c synchronous_commit=off`,
      "start",
    ]);
    started = true;
  };
  const down = () => {
    pgCtl(["-m", "fast", "-w", "stop"]);
    started = false;
  };
  try {
    if (asRoot) {
      const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"]).toString().trim());
      chownSync(dir, id("-u"), id("-g"));
      chownSync(socketDir, id("-u"), id("-g"));
    }
    run(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync"]);
    up();
  } catch (err) {
    stop();
    throw err;
  }
  return {
    url: `postgres://postgres@localhost/postgres?host=${encodeURIComponent(socketDir)}`,
    stop,
    down,
    up,
  };
}
