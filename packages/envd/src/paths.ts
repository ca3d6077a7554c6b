import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// Resolved through the package root so it holds from src/ (tests) and from dist/ alike.
const packageRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * The folder holding envd's bundle (envd.js), its native PTY module and its spawn helper: bind it
 * into sandboxes.
 */
export const envdDistDir: string = join(packageRoot, "dist/bundle");
/** The envd bundle, to run with Node >= 18: `node <envdBundlePath>`. */
export const envdBundlePath: string = join(envdDistDir, "envd.js");
/** envd's spawn helper (native/spawn-helper.c), beside the bundle when a C compiler built it. */
export const spawnHelperPath: string = join(envdDistDir, "wrenn-spawn");
