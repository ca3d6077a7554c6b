import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseEnv } from "node:util";

/**
 * Reads `.env` from the working directory, or the file `WRENN_ENV_FILE` names, into `env`
 * with Node's own parser (`util.parseEnv`). Variables already set win over the file. A missing
 * default `.env` is fine; a missing `WRENN_ENV_FILE` is an error. Returns the file read, if any.
 */
export function loadEnvFile(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const named = env.WRENN_ENV_FILE;
  const file = resolve(named || ".env");
  if (!named && !existsSync(file)) return undefined;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`WRENN_ENV_FILE: cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  for (const [key, value] of Object.entries(parseEnv(text))) {
    if (env[key] === undefined) env[key] = value;
  }
  return file;
}
