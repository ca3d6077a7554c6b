import { chmod, copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildDebian } from "../debian-base.js";
import { run } from "../run.js";
import type { BuildContext } from "../types.js";

/** The port E2B's code-interpreter SDK reaches the service on. */
export const CODE_INTERPRETER_PORT = 49999;

/** Jupyter's Python kernel and the usual data stack, and Node for the JavaScript kernel; all from Debian. */
export const CODE_INTERPRETER_PACKAGES = [
  "python3-ipykernel",
  "python3-jupyter-client",
  "python3-numpy",
  "python3-pandas",
  "python3-matplotlib",
  // The light side of fonttools' alternatives (else apt takes scipy, and with it a compiler).
  "python3-munkres",
  "python3-ufolib2",
  "python3-unicodedata2",
  // kernel.cjs, Wrenn's JavaScript kernel (Node's built-ins only).
  "nodejs",
];

// The service's files sit beside this module's source; from dist/ the same relative
// path leads back to src/ (both are three levels below the package root).
const SERVICE_DIR = fileURLToPath(
  new URL("../../../src/template/code-interpreter/", import.meta.url),
);
const SERVICE_FILES = [
  "server.py",
  "contexts.py",
  "kernel_startup.py",
  "node_context.py",
  "relay.py",
  "read_counter.py",
  "kernel.cjs",
];
const INSTALL_DIR = "opt/wrenn/code-interpreter";

/**
 * The `code-interpreter` template: `base`'s Debian plus Jupyter's Python kernel, numpy, pandas
 * and matplotlib, Node for Wrenn's JavaScript kernel, and Wrenn's code-interpreter service (E2B's protocol on port 49999), which
 * envd starts from /etc/wrenn/start.json and reports ready once the port answers.
 */
export async function buildCodeInterpreter(root: string, ctx: BuildContext): Promise<void> {
  await buildDebian(root, ctx, CODE_INTERPRETER_PACKAGES);

  ctx.progress("installing the code-interpreter service");
  await mkdir(join(root, INSTALL_DIR), { recursive: true });
  for (const file of SERVICE_FILES) {
    await copyFile(join(SERVICE_DIR, file), join(root, INSTALL_DIR, file));
    await chmod(join(root, INSTALL_DIR, file), 0o644);
  }
  await mkdir(join(root, "etc/wrenn"), { recursive: true });
  const service = `python3 /${INSTALL_DIR}/server.py --port ${CODE_INTERPRETER_PORT}`;
  const start = {
    // Started again when a signal ends it (a cell killing it, the OOM killer): its contexts are
    // lost, the sandbox's code interpreter is not. Any other end (a failing start) ends the
    // start command, and envd reports its exit and output.
    cmd: `while :; do ${service}; code=$?; [ "$code" -gt 128 ] || exit "$code"; sleep 1; done`,
    user: "user",
    cwd: "/home/user",
    envs: { PYTHONUNBUFFERED: "1" },
    ready: { port: CODE_INTERPRETER_PORT },
    readyTimeoutMs: 60_000,
  };
  await writeFile(join(root, "etc/wrenn/start.json"), `${JSON.stringify(start, null, 2)}\n`);

  // matplotlib scans the fonts on its first import (seconds); do it now, as the user, so the
  // first plot in every sandbox does not pay for it.
  ctx.progress("checking the Python stack and warming matplotlib's font cache");
  await run("chroot", [
    "--userspec=1000:1000",
    root,
    "env",
    "HOME=/home/user",
    "python3",
    "-c",
    "import ipykernel, jupyter_client, numpy, pandas, matplotlib.pyplot",
  ]);
  await run("chroot", [root, "node", "-e", "require('node:repl')"]);
}
