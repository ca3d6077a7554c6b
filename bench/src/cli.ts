import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { keepHostFirewallState } from "@wrenn/agent";
import { Sandbox } from "@wrenn/sdk";
import { startServerProcess } from "./server-process.js";
import { spawnDone } from "./speed.js";
import { type Figure, msSince, percentile } from "./stats.js";

const exec = promisify(execFile);
const MiB = 1024 * 1024;
const ROUNDS = Number(process.env.WRENN_BENCH_CLI_ROUNDS || 10);
const TRANSFER_MB = Number(process.env.WRENN_BENCH_TRANSFER_MB || 256);
const TRANSFERS = 3;
/** A script's first call: a new Node process that connects to a sandbox and runs `true`. */
const SDK_SCRIPT = [
  'import { Sandbox } from "@wrenn/sdk";',
  "const sandbox = await Sandbox.connect(process.env.WRENN_BENCH_SANDBOX);",
  'await sandbox.commands.run("true");',
].join("\n");
/** The `wrenn` command as npm installs it (the CLI package's bin entry). */
const WRENN = fileURLToPath(new URL("../../packages/cli/bin/run.cjs", import.meta.url));

/**
 * The `wrenn` command as a user runs it, one process per command, against a single-host server
 * in its own process (default settings): a command's wall time beside `node -e 0`, and
 * `wrenn files cp` of a large file each way beside `cp`, and a script's first SDK call in a new
 * process. Issue #12 sets no goal for these; they keep the cost of a short-lived client process
 * (its start, its HTTP client's load) in view.
 */
export async function benchCli(): Promise<Figure[]> {
  if (process.getuid?.() !== 0) throw new Error("the cli bench needs root (real sandboxes)");
  const restoreHost = await keepHostFirewallState();
  const dataDir = await mkdtemp(join(tmpdir(), "wrenn-bench-cli-"));
  const server = await startServerProcess(join(dataDir, "default"));
  try {
    const env = {
      ...process.env,
      WRENN_API_URL: server.conn.apiUrl,
      WRENN_API_KEY: server.conn.apiKey,
    };
    const wrenn = (...args: string[]) => exec(process.execPath, [WRENN, ...args], { env });
    const sandbox = await Sandbox.create(server.conn);
    const id = sandbox.sandboxId;

    const node: number[] = [];
    const execTrue: number[] = [];
    const script: number[] = [];
    const cp: number[] = [];
    const up: number[] = [];
    const down: number[] = [];
    try {
      // Interleaved, so that the machine's drift slows both alike.
      for (let i = 0; i < ROUNDS + 1; i++) {
        let start = process.hrtime.bigint();
        await spawnDone(process.execPath, ["-e", "0"]);
        const nodeMs = msSince(start);
        start = process.hrtime.bigint();
        await wrenn("exec", id, "--", "true");
        const execMs = msSince(start);
        start = process.hrtime.bigint();
        // From the bench's folder, where @wrenn/sdk resolves as in a user's project.
        await exec(process.execPath, ["--input-type=module", "-e", SDK_SCRIPT], {
          env: { ...env, WRENN_BENCH_SANDBOX: id },
          cwd: fileURLToPath(new URL("..", import.meta.url)),
        });
        const scriptMs = msSince(start);
        // The first round warms the disk cache for the CLI's and the SDK's files.
        if (i === 0) continue;
        node.push(nodeMs);
        execTrue.push(execMs);
        script.push(scriptMs);
      }

      const local = join(dataDir, "transfer.bin");
      const block = randomBytes(MiB);
      await writeFile(local, Buffer.concat(Array.from({ length: TRANSFER_MB }, () => block)));
      const mbs = (start: bigint) => TRANSFER_MB / (msSince(start) / 1000);
      for (let i = 0; i < TRANSFERS; i++) {
        await exec("sync");
        let start = process.hrtime.bigint();
        await copyFile(local, `${local}.copy`);
        cp.push(mbs(start));
        await rm(`${local}.copy`);
        await exec("sync");
        start = process.hrtime.bigint();
        await wrenn("files", "cp", local, `${id}:/home/user/transfer.bin`);
        up.push(mbs(start));
        start = process.hrtime.bigint();
        await wrenn("files", "cp", `${id}:/home/user/transfer.bin`, `${local}.back`);
        down.push(mbs(start));
        await rm(`${local}.back`);
      }
    } finally {
      await sandbox.kill();
    }

    const figure = (name: string, value: number, unit: string, what: string, base: number) => ({
      suite: "cli",
      name,
      value,
      unit,
      note: `${what}: ${base.toFixed(1)} ${unit}; ${(value / base).toFixed(2)}×`,
      baseline: base,
      baselineWhat: what,
      ratio: value / base,
    });
    const cpMbs = percentile(cp, 50);
    return [
      figure(
        "wrenn exec <id> -- true, p50",
        percentile(execTrue, 50),
        "ms",
        "node -e 0 p50",
        percentile(node, 50),
      ),
      figure(
        "SDK script: a new process's Sandbox.connect + commands.run('true'), p50",
        percentile(script, 50),
        "ms",
        "node -e 0 p50",
        percentile(node, 50),
      ),
      figure(
        `wrenn files cp ${TRANSFER_MB} MiB up, p50 of ${TRANSFERS}`,
        percentile(up, 50),
        "MB/s",
        "cp p50",
        cpMbs,
      ),
      figure(
        `wrenn files cp ${TRANSFER_MB} MiB down, p50 of ${TRANSFERS}`,
        percentile(down, 50),
        "MB/s",
        "cp p50",
        cpMbs,
      ),
    ];
  } finally {
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
    await restoreHost();
  }
}
