// Regenerates packages/proto from proto/ and fails if the committed code differs (or is untracked).
import { execFileSync } from "node:child_process";

const run = (cmd, args) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });

run("npx", ["buf", "lint"]);
run("npx", ["buf", "generate"]);
const drift = run("git", ["status", "--porcelain", "--", "packages/proto/src/gen"]).trim();
if (drift) {
  console.error(
    `Generated code is out of date with proto/ (run \`npm run generate\` and commit):\n${drift}`,
  );
  process.exit(1);
}
console.log("generated code: up to date");
