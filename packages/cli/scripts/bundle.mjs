// Bundles the wrenn command into dist/bundle/wrenn.js: oclif, the SDK and every command in one
// ES module (and the few chunks it shares with lazily loaded parts), so that a command loads about
// five files instead of some 260 (oclif's dependencies alone are
// 200 small CommonJS files, each resolved, read and compiled). The commands are found through
// the bundle's COMMANDS export (oclif's "explicit" discovery). What a few commands need and
// the rest never load stays outside: the server and agent (dynamic imports), Ink and React
// (prompts and progress bars), native addons.
import { readdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const out = join(dist, "bundle");
await rm(out, { recursive: true, force: true });

/** Every command file under dist/commands, as oclif names it ("sandbox:create"). */
function commands(dir = join(dist, "commands")) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return commands(path);
    if (!entry.name.endsWith(".js")) return [];
    const id = relative(join(dist, "commands"), path)
      .replace(/\.js$/, "")
      .replace(/\/index$/, "")
      .split("/")
      .join(":");
    return [{ id, path }];
  });
}

const found = commands().sort((a, b) => a.id.localeCompare(b.id));
const entry = [
  'import { execute } from "@oclif/core";',
  ...found.map((c, i) => `import c${i} from ${JSON.stringify(`./${relative(dist, c.path)}`)};`),
  `export const COMMANDS = { ${found.map((c, i) => `${JSON.stringify(c.id)}: c${i}`).join(", ")} };`,
  "/** Runs the command line of this process. */",
  "export const run = () => execute({ dir: import.meta.url });",
].join("\n");

await build({
  stdin: { contents: entry, resolveDir: dist, sourcefile: "wrenn-entry.js" },
  outdir: out,
  entryNames: "wrenn",
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  legalComments: "none",
  logLevel: "warning",
  external: ["@wrenn/server", "@wrenn/agent", "ink", "react", "react/*", "typescript", "ts-node"],
  // oclif and its dependencies are CommonJS: their require(), __filename and __dirname.
  banner: {
    js: [
      'import { createRequire as __wrennRequire } from "node:module";',
      'import { fileURLToPath as __wrennPath } from "node:url";',
      "const require = __wrennRequire(import.meta.url);",
      "const __filename = __wrennPath(import.meta.url);",
      'const __dirname = __filename.slice(0, __filename.lastIndexOf("/"));',
    ].join("\n"),
  },
});
console.log(`dist/bundle/wrenn.js: ${found.length} commands`);
