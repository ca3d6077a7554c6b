// dist/bundle/envd.js: runs envd's CommonJS bundle (envd.cjs) through V8's code cache made at build
// time (envd.cjs.cache), so a sandbox's envd skips parsing and compiling most of its code. A cache
// from another Node or V8 is rejected by V8 itself and the bundle is compiled as usual. Itself
// CommonJS (the bundle folder's package.json says so): Node then starts it without setting up its
// ES module loader, a few milliseconds of every envd's start.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Script } from "node:vm";

// Always the main script: envd's files sit beside it.
const dir = dirname(process.argv[1] ?? ".");
const file = join(dir, "envd.cjs");
const cacheFile = `${file}.cache`;
let cachedData: Buffer | undefined;
try {
  cachedData = readFileSync(cacheFile);
} catch {
  // No cache: compiled as usual.
}
const source = readFileSync(file, "utf8");
const script = new Script(
  `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
  { filename: file, ...(cachedData ? { cachedData } : {}) },
);
const cjsModule = { exports: {} };
script.runInThisContext()(cjsModule.exports, createRequire(file), cjsModule, file, dir);
// At build time (scripts/bundle.mjs): the cache, taken when envd stops, covers what start-up ran.
if (process.env.WRENN_ENVD_WRITE_CODE_CACHE === "1") {
  process.once("exit", () => writeFileSync(cacheFile, script.createCachedData()));
}
