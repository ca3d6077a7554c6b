// Bundles envd into dist/envd.js (one file, Node >= 18) and places the native PTY module beside it.
import { cp, mkdir, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));

await build({
  entryPoints: [join(root, "src/main.ts")],
  outfile: join(root, "dist/envd.js"),
  bundle: true,
  platform: "node",
  target: "node18",
  format: "esm",
  // node-pty is a native addon: kept outside the bundle, shipped in dist/node_modules.
  external: ["node-pty"],
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  legalComments: "none",
  logLevel: "warning",
});

// dist/ is bound alone into sandboxes, away from this package.json: mark the bundle as ESM there
// (Node 18 does not detect module syntax by itself).
await writeFile(join(root, "dist/package.json"), `${JSON.stringify({ type: "module" })}\n`);

const ptyRoot = dirname(require.resolve("node-pty/package.json"));
const ptyOut = join(root, "dist/node_modules/node-pty");
await rm(ptyOut, { recursive: true, force: true });
await mkdir(join(ptyOut, "build/Release"), { recursive: true });
await cp(join(ptyRoot, "package.json"), join(ptyOut, "package.json"));
await cp(join(ptyRoot, "lib"), join(ptyOut, "lib"), { recursive: true });
await cp(join(ptyRoot, "build/Release/pty.node"), join(ptyOut, "build/Release/pty.node"));
