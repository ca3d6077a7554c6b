// Bundles envd into dist/bundle/envd.cjs (one CommonJS file, Node >= 18) started by
// dist/bundle/envd.js through V8's code cache (envd.cjs.cache, made here by running envd once), and
// places the native PTY module and the spawn helper beside it. dist/bundle is the folder bound
// into sandboxes and copied into microVM images: envd's files and nothing else.
import { execFileSync, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir, userInfo } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Filesystem } from "@wrenn/proto/filesystem";
import { Process } from "@wrenn/proto/process";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));
const dist = join(root, "dist/bundle");
await rm(dist, { recursive: true, force: true });

const common = {
  bundle: true,
  platform: "node",
  target: "node18",
  legalComments: "none",
  logLevel: "warning",
};
await build({
  ...common,
  entryPoints: [join(root, "src/main.ts")],
  outfile: join(dist, "envd.cjs"),
  // CommonJS: V8's code cache serves scripts, not ES modules, on Node 20.
  format: "cjs",
  // node-pty is a native addon: kept outside the bundle, shipped in its node_modules folder.
  external: ["node-pty"],
  // import() of what envd rarely needs (http2, https) stays lazy as a require() when first used.
  supported: { "dynamic-import": false },
});
await build({
  ...common,
  entryPoints: [join(root, "src/start.ts")],
  outfile: join(dist, "envd.js"),
  format: "cjs",
});

// The folder is bound alone into sandboxes, away from this package.json (an ES module package):
// its own says envd.js is CommonJS.
await writeFile(join(dist, "package.json"), `${JSON.stringify({ type: "commonjs" })}\n`);

const ptyRoot = dirname(require.resolve("node-pty/package.json"));
const ptyOut = join(dist, "node_modules/node-pty");
await rm(ptyOut, { recursive: true, force: true });
await mkdir(join(ptyOut, "build/Release"), { recursive: true });
await cp(join(ptyRoot, "package.json"), join(ptyOut, "package.json"));
await cp(join(ptyRoot, "lib"), join(ptyOut, "lib"), { recursive: true });
await cp(join(ptyRoot, "build/Release/pty.node"), join(ptyOut, "build/Release/pty.node"));

buildSpawnHelper();
await writeCodeCache();

/**
 * wrenn-spawn, envd's spawn helper (native/spawn-helper.c), with the host's C compiler. It
 * is linked statically: it runs inside sandboxes, against whatever C library their template has.
 * Without a compiler (or static libc) envd starts processes with Node's spawn, a little slower.
 */
function buildSpawnHelper() {
  const out = join(dist, "wrenn-spawn");
  const cc = process.env.CC || "cc";
  rmSync(out, { force: true });
  try {
    execFileSync(cc, ["-O2", "-Wall", "-static", "-o", out, join(root, "native/spawn-helper.c")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch (err) {
    console.warn(
      `envd bundle: no spawn helper (${cc}: ${err.stderr?.toString().trim() || err.message}); processes start with Node's spawn`,
    );
  }
}

/**
 * Starts envd once on a loopback port, makes the requests a new sandbox's first moments make (run
 * a command, write and read a file), then stops it: on exit it writes the code of everything
 * start-up and those requests compiled, so a fresh envd's first answers run compiled code too.
 * Without a cache envd still runs, only compiles more.
 */
async function writeCodeCache() {
  const cacheFile = join(dist, "envd.cjs.cache");
  await rm(cacheFile, { force: true });
  const child = spawn(process.execPath, [join(dist, "envd.js")], {
    env: {
      ...process.env,
      WRENN_ENVD_PORT: "0",
      WRENN_ENVD_HOST: "127.0.0.1",
      WRENN_ENVD_USER: userInfo().username,
      WRENN_ENVD_WRITE_CODE_CACHE: "1",
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const lines = createInterface({ input: child.stdout });
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  for await (const line of lines) {
    if (line.includes('"msg":"envd listening"')) {
      await warmUp(JSON.parse(line).port).catch((err) =>
        console.warn(`envd bundle: code cache covers start-up only (${err.message})`),
      );
      child.kill("SIGTERM");
      break;
    }
  }
  const code = await exited;
  clearTimeout(timer);
  if (code !== 0) console.warn(`envd bundle: no code cache (envd exited ${code})`);
}

/** The first requests of a sandbox's life, against the envd on `port`. */
async function warmUp(port) {
  const baseUrl = `http://127.0.0.1:${port}`;
  const transport = createConnectTransport({ baseUrl, httpVersion: "1.1" });
  const process = createClient(Process, transport);
  const filesystem = createClient(Filesystem, transport);
  const dir = await mkdtemp(join(tmpdir(), "envd-warm-up-"));
  try {
    // Twice: the second round goes over kept-alive connections, a path of its own.
    for (let i = 0; i < 2; i++) {
      for await (const _ of process.start({ process: { cmd: "true" } })) {
        // Its start, output and end events.
      }
      const url = `${baseUrl}/files?path=${encodeURIComponent(join(dir, "f"))}`;
      const body = "warm";
      const headers = { "content-type": "application/octet-stream" };
      const put = await fetch(url, { method: "POST", body, headers });
      const got = await fetch(url);
      if (!put.ok || (await got.text()) !== body) throw new Error(`files answered ${got.status}`);
      // The Filesystem service, loaded on its first call.
      await filesystem.listDir({ path: dir, depth: 1 });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
