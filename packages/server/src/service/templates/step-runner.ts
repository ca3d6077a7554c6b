import { Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { StringDecoder } from "node:string_decoder";
import type { FileService } from "../files.js";
import type { ProcessService } from "../processes.js";
import { type BuildEvent, BuildFailure } from "./events.js";
import { OutputTail } from "./output-tail.js";
import {
  commandOf,
  type Recipe,
  type RecipeStep,
  type StepContext,
  type TemplateConfig,
} from "./recipe.js";

/** How long one step may run. */
const STEP_TIMEOUT_MS = 30 * 60_000;
/** Log lines are sent in pieces of at most this many bytes. */
const LOG_CHUNK = 16 * 1024;
/** Files per upload of a copy step: envd takes up to 1,000 parts in one. */
const FILES_PER_UPLOAD = 500;
const UNSENDABLE_NAME = /["\r\n]/;
/** Bytes of paths per chmod command line, well under the kernel's limit on arguments. */
const CHMOD_ARGS_BYTES = 64 * 1024;

/** `chmod` command lines giving each copied file with a mode its mode, several files to each. */
function chmodCommands(copies: readonly { path: string; mode?: number | undefined }[]): string[] {
  const byMode = new Map<number, string[]>();
  for (const { path, mode } of copies) {
    if (mode === undefined) continue;
    const paths = byMode.get(mode & 0o7777) ?? [];
    paths.push(shellQuote(path));
    byMode.set(mode & 0o7777, paths);
  }
  const commands: string[] = [];
  for (const [mode, paths] of byMode) {
    let line = "";
    for (const path of paths) {
      if (line && line.length + path.length > CHMOD_ARGS_BYTES) {
        commands.push(line);
        line = "";
      }
      line = `${line || `chmod ${mode.toString(8)} --`} ${path}`;
    }
    commands.push(line);
  }
  return commands;
}

/** Runs a build's steps in its build sandbox: commands (their output to the log) and copies. */
export class StepRunner {
  constructor(
    private readonly processes: ProcessService,
    private readonly files: FileService,
  ) {}

  async run(
    teamId: string,
    sandboxId: string,
    recipe: Recipe,
    step: RecipeStep,
    index: number,
    ctx: StepContext,
    emit: (event: BuildEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    if (step.type === "copy") {
      const user = step.user ?? ctx.user;
      const copies = step.files.map((file) => ({
        path: file.path ? `${step.dest.replace(/\/+$/, "")}/${file.path}` : step.dest,
        content: recipe.files[file.sha256] as Buffer,
        mode: file.mode,
      }));
      // A few requests per step, not two per file: the files go up together, then their modes.
      // FormData escapes '"', CR and LF in a part's file name: such paths go up one by one.
      const together: typeof copies = [];
      const alone: typeof copies = [];
      for (const copy of copies) (UNSENDABLE_NAME.test(copy.path) ? alone : together).push(copy);
      for (let at = 0; at < together.length; at += FILES_PER_UPLOAD) {
        await this.uploadAll(teamId, sandboxId, user, together.slice(at, at + FILES_PER_UPLOAD));
      }
      for (const { path, content } of alone) {
        await this.uploadOne(teamId, sandboxId, user, path, content);
      }
      for (const cmd of chmodCommands(copies)) {
        await this.exec(teamId, sandboxId, { cmd, user: "root" }, index, ctx, emit, signal);
      }
      return;
    }
    const command = commandOf(step, index, ctx);
    if (!command) return;
    if (ctx.workdir) {
      // As Docker does: a WORKDIR not there yet is made (the last directory the user's).
      const dir = shellQuote(ctx.workdir);
      const made = `[ -d ${dir} ] || { mkdir -p -- ${dir} && chown -- ${shellQuote(ctx.user)} ${dir}; }`;
      const root = { ...ctx, workdir: undefined };
      await this.exec(teamId, sandboxId, { cmd: made, user: "root" }, index, root, emit, signal);
    }
    await this.exec(teamId, sandboxId, command, index, ctx, emit, signal);
  }

  /** Runs one command of a step, streaming its output; a non-zero exit fails the build. */
  private async exec(
    teamId: string,
    sandboxId: string,
    command: { cmd: string; user: string },
    index: number,
    ctx: StepContext,
    emit: (event: BuildEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const procs = await this.processes.open(teamId, sandboxId);
    const stream = await procs.start({
      cmd: command.cmd,
      user: command.user,
      envs: ctx.envs,
      ...(ctx.workdir ? { cwd: ctx.workdir } : {}),
      timeoutMs: STEP_TIMEOUT_MS,
    });
    const kill = () => void stream.signal("SIGKILL").catch(() => {});
    signal.addEventListener("abort", kill, { once: true });
    const tail = new OutputTail();
    // Output comes in pieces cut anywhere: a character split between two is decoded whole.
    const decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
    try {
      for await (const event of stream) {
        if (event.type === "output") {
          tail.push(event.data);
          const stream = event.stream === "stderr" ? "stderr" : "stdout";
          for (let at = 0; at < event.data.byteLength; at += LOG_CHUNK) {
            const text = decoders[stream].write(
              Buffer.from(event.data.subarray(at, at + LOG_CHUNK)),
            );
            if (text) emit({ type: "log", index, stream, text });
          }
          continue;
        }
        for (const stream of ["stdout", "stderr"] as const) {
          const text = decoders[stream].end();
          if (text) emit({ type: "log", index, stream, text });
        }
        if (event.exitCode !== 0 || event.error) {
          throw new BuildFailure(
            "step_failed",
            `step ${index} failed with exit code ${event.exitCode}${event.error ? `: ${event.error}` : ""}`,
            index,
            event.exitCode,
            tail.toString(),
          );
        }
      }
    } finally {
      signal.removeEventListener("abort", kill);
    }
  }

  /** One multipart upload, each part named by the path it goes to. */
  private async uploadAll(
    teamId: string,
    sandboxId: string,
    user: string,
    copies: readonly { path: string; content: Buffer }[],
  ): Promise<void> {
    const form = new FormData();
    for (const { path, content } of copies) form.append("file", new Blob([content]), path);
    const encoded = new Response(form);
    // No path: each part's file name is where it goes.
    await this.files.upload(teamId, sandboxId, {
      user,
      body: Readable.fromWeb(encoded.body as NodeReadableStream),
      contentType: encoded.headers.get("content-type") as string,
    });
  }

  /** /etc/wrenn/defaults.json and start.json, which envd reads when a sandbox of the template starts. */
  async writeConfig(teamId: string, sandboxId: string, config: TemplateConfig): Promise<void> {
    const files: [string, unknown][] = [["/etc/wrenn/defaults.json", config.defaults]];
    if (config.start) files.push(["/etc/wrenn/start.json", config.start]);
    for (const [path, body] of files) {
      await this.uploadOne(teamId, sandboxId, "root", path, Buffer.from(JSON.stringify(body)));
    }
  }

  /** One file, its content the whole request body. */
  private async uploadOne(
    teamId: string,
    sandboxId: string,
    user: string,
    path: string,
    content: Buffer,
  ): Promise<void> {
    await this.files.upload(teamId, sandboxId, {
      path,
      user,
      body: Readable.from([content]),
      contentType: "application/octet-stream",
      contentLength: String(content.length),
    });
  }
}

/** One shell word. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

/** Applies a context step to what later steps see; a start step returns the template's start command. */
export function applyContext(
  step: RecipeStep,
  ctx: StepContext,
): TemplateConfig["start"] | undefined {
  switch (step.type) {
    case "env":
      ctx.envs = { ...ctx.envs, ...step.envs };
      return undefined;
    case "workdir":
      ctx.workdir = step.path;
      return undefined;
    case "user":
      ctx.user = step.name;
      return undefined;
    case "start":
      return {
        cmd: step.cmd,
        user: ctx.user,
        envs: ctx.envs,
        ...(ctx.workdir ? { cwd: ctx.workdir } : {}),
        ...(step.ready ? { ready: step.ready } : {}),
        ...(step.ready_timeout_ms ? { readyTimeoutMs: step.ready_timeout_ms } : {}),
      };
    default:
      return undefined;
  }
}
