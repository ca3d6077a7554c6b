// ESM and CommonJS builds of the same sources, each with its own .d.ts, so `import` and
// `require` both get matching types (checked by `npm run lint:package`).
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsc = (project) =>
  execFileSync("npx", ["tsc", "-p", project], { cwd: root, stdio: "inherit" });

rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
tsc("tsconfig.build.json");
tsc("tsconfig.cjs.json");
// Files under dist/cjs are CommonJS whatever the package's "type" says.
writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{ "type": "commonjs" }\n');
