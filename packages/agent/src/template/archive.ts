import { spawn } from "node:child_process";
import { lstat, readdir } from "node:fs/promises";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AgentError } from "../errors.js";
import { run } from "./run.js";

// Owners by number (the rootfs's users are the sandbox's, not the host's); xattrs kept, overlay's
// opaque markers included.
const TAR_FLAGS = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sparse"];

/** A tar stream of `entries` under `dir`; errors (tar exiting non-zero) destroy the stream. */
export function tarStream(dir: string, entries: readonly string[]): Readable {
  const child = spawn("tar", ["-C", dir, ...TAR_FLAGS, "-cf", "-", "--", ...entries], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = new PassThrough();
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdout.pipe(out, { end: false });
  child.once("error", (err) => out.destroy(AgentError.from(err)));
  child.once("close", (code) => {
    if (code === 0) out.end();
    else out.destroy(new AgentError("internal", `tar -c failed (${code}): ${stderr.trim()}`));
  });
  // The reader went away: the archive is not needed any more.
  out.once("close", () => child.exitCode === null && child.kill("SIGKILL"));
  return out;
}

/**
 * Extracts a tar stream into `dir` (empty, made by the caller). GNU tar keeps every member
 * inside it: leading `/` is stripped, `..` members are refused, and symlinks that point out are
 * created only after everything else, so no member is written through one. After extraction
 * only the `allowed` top-level names may exist, and no device node but overlay's whiteouts (0:0).
 */
export async function untar(
  body: Readable,
  dir: string,
  allowed: readonly string[],
): Promise<void> {
  const child = spawn(
    "tar",
    ["-C", dir, ...TAR_FLAGS, "--same-permissions", "--no-overwrite-dir", "-xf", "-"],
    { stdio: ["pipe", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  });
  try {
    await pipeline(body, child.stdin);
  } catch (err) {
    child.kill("SIGKILL");
    await exited.catch(() => {});
    throw new AgentError("invalid_argument", `the archive stream broke: ${String(err)}`, {
      cause: err,
    });
  }
  const code = await exited;
  if (code !== 0) {
    throw new AgentError("invalid_argument", `not a valid archive: tar said ${stderr.trim()}`);
  }
  const extra = (await readdir(dir)).filter((name) => !allowed.includes(name));
  if (extra.length > 0) {
    throw new AgentError(
      "invalid_argument",
      `unexpected entries in the archive: ${extra.join(", ")}`,
    );
  }
  const devices = await run("find", [dir, "(", "-type", "b", "-o", "-type", "c", ")", "-print0"]);
  for (const path of devices.split("\0").filter(Boolean)) {
    const st = await lstat(path);
    if (!st.isCharacterDevice() || st.rdev !== 0) {
      throw new AgentError(
        "invalid_argument",
        `device node in the archive: ${path.slice(dir.length)}`,
      );
    }
  }
}
