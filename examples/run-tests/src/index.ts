import { readdir, readFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Sandbox } from "@wrenn/sdk";

// Upload a local project into a fresh sandbox and run its test suite there: untrusted or
// half-written code gets tested without touching this machine.
// Usage: npm start [-- <project dir>] (default: the small Python project in fixtures/project).

const projectDir = resolve(
  process.argv[2] ?? fileURLToPath(new URL("../fixtures/project", import.meta.url)),
);
const REMOTE_DIR = "/home/user/project";
const SKIP = new Set(["__pycache__", "node_modules", ".git", ".venv"]);

/** Every file under `dir`, depth first, without caches and VCS data. */
async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield path;
  }
}

const sandbox = await Sandbox.create();
try {
  const files: { path: string; data: Uint8Array }[] = [];
  for await (const path of walk(projectDir)) {
    files.push({ path: `${REMOTE_DIR}/${relative(projectDir, path)}`, data: await readFile(path) });
  }
  // One call uploads them all; parent directories are created as needed.
  const written = await sandbox.files.write(files);
  console.log(`uploaded ${written.length} files to ${REMOTE_DIR}:`);
  for (const entry of written) console.log(`  ${entry.path}`);

  // A failing suite exits non-zero; keep the result instead of catching a CommandExitError.
  const run = await sandbox.commands.run("python3 -m unittest discover -v", {
    cwd: REMOTE_DIR,
    throwOnError: false,
    timeoutMs: 60_000,
  });
  // unittest reports on stderr.
  console.log(`${run.stdout}${run.stderr}`.trimEnd());
  console.log(run.exitCode === 0 ? "tests passed" : `tests failed (exit code ${run.exitCode})`);
  process.exitCode = run.exitCode;
} finally {
  await sandbox.kill();
}
