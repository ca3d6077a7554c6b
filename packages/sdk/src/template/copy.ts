import type { TemplateStep } from "./template.js";

/** The copy step as the server takes it: files named by hash, contents sent beside the steps. */
interface WireCopy {
  type: "copy";
  dest: string;
  user?: string;
  files: { path: string; sha256: string; mode: number }[];
}

/** Copied files of one build are at most this large in total (the server's limit is on the request). */
export const MAX_COPY_BYTES = 48 * 1024 * 1024;

/**
 * Reads the local files of the copy steps (a file, or a directory's tree): the steps then name
 * them by sha256, and `files` holds each content once, base64. Node only.
 */
export async function readCopies(steps: TemplateStep[]): Promise<{
  steps: (Exclude<TemplateStep, { type: "copy" }> | WireCopy)[];
  files: Record<string, string>;
}> {
  const files: Record<string, string> = {};
  let total = 0;
  const out: (Exclude<TemplateStep, { type: "copy" }> | WireCopy)[] = [];
  for (const step of steps) {
    if (step.type !== "copy") {
      out.push(step);
      continue;
    }
    const { readFile, readdir, stat } = await import("node:fs/promises");
    const { createHash } = await import("node:crypto");
    const { basename, join, relative, sep } = await import("node:path");
    const entries: { path: string; sha256: string; mode: number }[] = [];
    const add = async (abs: string, rel: string) => {
      const content = await readFile(abs);
      total += content.length;
      if (total > MAX_COPY_BYTES) {
        throw new RangeError(`copied files are over ${MAX_COPY_BYTES} bytes in total`);
      }
      const sha256 = createHash("sha256").update(content).digest("hex");
      files[sha256] ??= content.toString("base64");
      entries.push({ path: rel, sha256, mode: step.mode ?? (await stat(abs)).mode & 0o7777 });
    };
    const root = await stat(step.src);
    // A destination ending in "/" is a directory: a file goes into it under its own name.
    let dest = step.dest;
    if (!root.isDirectory() && dest.endsWith("/")) dest += basename(step.src);
    if (root.isDirectory()) {
      const walk = async (dir: string): Promise<void> => {
        for (const entry of await readdir(dir, { withFileTypes: true })) {
          const abs = join(dir, entry.name);
          if (entry.isDirectory()) await walk(abs);
          else if (entry.isFile()) await add(abs, relative(step.src, abs).split(sep).join("/"));
        }
      };
      await walk(step.src);
    } else {
      await add(step.src, "");
    }
    if (entries.length === 0) throw new RangeError(`copy: ${step.src} has no files`);
    out.push({
      type: "copy",
      dest,
      files: entries.sort((a, b) => a.path.localeCompare(b.path)),
      ...(step.user ? { user: step.user } : {}),
    });
  }
  return { steps: out, files };
}
