import { createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Sandbox } from "@wrenn/sdk";
import { CliError } from "../../errors/index.js";
import { baseName, joinRemote } from "./location.js";

const MiB = 1024 * 1024;

/** One file or directory to make on the other side, relative to the copy's root. */
export interface CopyItem {
  /** Relative path ("" for the root itself). */
  rel: string;
  type: "file" | "dir";
  size: number;
}

export interface CopyPlan {
  items: CopyItem[];
  totalBytes: number;
  /** Entries left out (symlinks, sockets, …), by relative path. */
  skipped: string[];
}

export interface CopyEvents {
  /** Bytes moved so far over the whole copy, and the file moving now. */
  onProgress?(doneBytes: number, current: string): void;
}

export interface CopyResult {
  files: number;
  dirs: number;
  bytes: number;
  skipped: string[];
  /** Where the root landed. */
  destination: string;
}

/** Counts bytes as they pass, without buffering. */
async function* counted(
  source: AsyncIterable<Uint8Array>,
  onBytes: (n: number) => void,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    onBytes(chunk.byteLength);
    yield chunk;
  }
}

/** The local tree under `root` (a file gives one item), directories before what they hold. */
export async function planLocal(root: string): Promise<CopyPlan> {
  const top = await stat(root).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT")
      throw new CliError("not_found", `No such local file or directory: ${root}.`);
    throw err;
  });
  if (top.isFile())
    return {
      items: [{ rel: "", type: "file", size: top.size }],
      totalBytes: top.size,
      skipped: [],
    };
  const plan: CopyPlan = { items: [{ rel: "", type: "dir", size: 0 }], totalBytes: 0, skipped: [] };
  const walk = async (rel: string) => {
    const entries = await readdir(join(root, rel), { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        plan.items.push({ rel: path, type: "dir", size: 0 });
        await walk(path);
      } else if (entry.isFile()) {
        const { size } = await lstat(join(root, path));
        plan.items.push({ rel: path, type: "file", size });
        plan.totalBytes += size;
      } else {
        plan.skipped.push(path);
      }
    }
  };
  await walk("");
  return plan;
}

/** The sandbox tree under `root`, one listing per directory. */
export async function planRemote(sandbox: Sandbox, root: string): Promise<CopyPlan> {
  const top = await sandbox.files.getInfo(root);
  if (top.type === "file")
    return {
      items: [{ rel: "", type: "file", size: top.size }],
      totalBytes: top.size,
      skipped: [],
    };
  if (top.type !== "dir")
    throw new CliError(
      "invalid_argument",
      `${root} in the sandbox is a ${top.type}, not a file or directory.`,
    );
  const plan: CopyPlan = { items: [{ rel: "", type: "dir", size: 0 }], totalBytes: 0, skipped: [] };
  const walk = async (rel: string) => {
    const entries = await sandbox.files.list(rel ? joinRemote(root, rel) : root);
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.type === "dir") {
        plan.items.push({ rel: path, type: "dir", size: 0 });
        await walk(path);
      } else if (entry.type === "file") {
        plan.items.push({ rel: path, type: "file", size: entry.size });
        plan.totalBytes += entry.size;
      } else {
        plan.skipped.push(path);
      }
    }
  };
  await walk("");
  return plan;
}

/**
 * `cp -r` rules: into an existing directory the root keeps its name; otherwise it takes the
 * destination's name.
 */
function destinationRoot(
  dest: string,
  destIsDir: boolean,
  src: string,
  join: (a: string, b: string) => string,
) {
  return destIsDir ? join(dest, baseName(src)) : dest;
}

async function remoteIsDir(sandbox: Sandbox, path: string): Promise<boolean> {
  if (!(await sandbox.files.exists(path))) return false;
  return (await sandbox.files.getInfo(path)).type === "dir";
}

async function localIsDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Local file or tree → sandbox, streamed file by file. */
export async function upload(
  sandbox: Sandbox,
  src: string,
  dest: string,
  plan: CopyPlan,
  events: CopyEvents = {},
): Promise<CopyResult> {
  const root = destinationRoot(dest, await remoteIsDir(sandbox, dest), src, joinRemote);
  let done = 0;
  const result: CopyResult = {
    files: 0,
    dirs: 0,
    bytes: 0,
    skipped: plan.skipped,
    destination: root,
  };
  for (const item of plan.items) {
    const target = item.rel ? joinRemote(root, item.rel) : root;
    if (item.type === "dir") {
      await sandbox.files.makeDir(target);
      result.dirs++;
      continue;
    }
    const label = item.rel || baseName(src);
    // 1 MiB reads: a sixteenth of the chunks (and of the per-chunk work) of the 64 KiB default.
    const file = createReadStream(item.rel ? join(src, item.rel) : src, { highWaterMark: MiB });
    const source = counted(file, (n) => {
      done += n;
      events.onProgress?.(done, label);
    });
    try {
      await sandbox.files.write(target, source);
    } finally {
      // A write that failed part-way leaves the file open otherwise.
      file.destroy();
    }
    result.files++;
    result.bytes += item.size;
  }
  return result;
}

/** Sandbox file or tree → local, streamed file by file. */
export async function download(
  sandbox: Sandbox,
  src: string,
  dest: string,
  plan: CopyPlan,
  events: CopyEvents = {},
): Promise<CopyResult> {
  const root = destinationRoot(dest, await localIsDir(dest), src, join);
  let done = 0;
  const result: CopyResult = {
    files: 0,
    dirs: 0,
    bytes: 0,
    skipped: plan.skipped,
    destination: root,
  };
  for (const item of plan.items) {
    const target = item.rel ? join(root, item.rel) : root;
    if (item.type === "dir") {
      await mkdir(target, { recursive: true });
      result.dirs++;
      continue;
    }
    const label = item.rel || baseName(src);
    const stream = await sandbox.files.read(item.rel ? joinRemote(src, item.rel) : src, {
      format: "stream",
    });
    await pipeline(
      stream as unknown as AsyncIterable<Uint8Array>,
      (source: AsyncIterable<Uint8Array>) =>
        counted(source, (n) => {
          done += n;
          events.onProgress?.(done, label);
        }),
      createWriteStream(target),
    );
    result.files++;
    result.bytes += item.size;
  }
  return result;
}
