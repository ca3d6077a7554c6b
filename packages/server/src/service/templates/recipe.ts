import { createHash } from "node:crypto";
import { ServerError } from "../../errors.js";

/** How a template's start command is found ready: a port answering, a file, a command exiting 0. */
export type ReadyCheck = { port: number } | { file: string } | { cmd: string };

/** One file of a copy step: where under `dest` it goes, and its content by hash in the request. */
export interface CopyFile {
  /** Relative to the step's `dest`; empty when `dest` is the file itself. */
  path: string;
  sha256: string;
  mode?: number;
}

export type RecipeStep =
  | { type: "run"; cmd: string; user?: string }
  | { type: "apt_install"; packages: string[] }
  | { type: "pip_install"; packages: string[] }
  | { type: "npm_install"; packages: string[]; global?: boolean }
  | { type: "copy"; dest: string; files: CopyFile[]; user?: string }
  | { type: "env"; envs: Record<string, string> }
  | { type: "workdir"; path: string }
  | { type: "user"; name: string }
  | { type: "start"; cmd: string; ready?: ReadyCheck; ready_timeout_ms?: number };

/** What to build: a parent, its steps, and the content of the files the steps copy. */
export interface Recipe {
  name: string;
  from: { template: string } | { snapshot: string };
  steps: RecipeStep[];
  /** File contents by their sha256 (hex), base64-encoded. */
  files: Record<string, Buffer>;
  vcpus?: number;
  memoryMb?: number;
  diskSizeMb?: number;
}

/** What a step sees of the steps before it: the environment, directory and user it runs with. */
export interface StepContext {
  envs: Record<string, string>;
  workdir: string | undefined;
  user: string;
}

/** The start command and defaults of the built template, written into its last layer. */
export interface TemplateConfig {
  start?: {
    cmd: string;
    user: string;
    cwd?: string;
    envs: Record<string, string>;
    ready?: ReadyCheck;
    readyTimeoutMs?: number;
  };
  defaults: { user: string; workdir?: string; envs: Record<string, string> };
}

/** Package names go to a shell: letters, digits and the punctuation of version specifiers only. */
const PACKAGE = /^[A-Za-z0-9@][A-Za-z0-9@._+:=<>~/^*-]*$/;

function packages(step: { packages: string[] }, index: number): string {
  for (const name of step.packages) {
    if (!PACKAGE.test(name)) {
      throw new ServerError(
        "invalid_argument",
        `steps[${index}]: ${JSON.stringify(name)} is not a package name`,
      );
    }
  }
  return step.packages.map((p) => `'${p}'`).join(" ");
}

/** A command that changes the filesystem, as the build runs it; undefined for a step that only sets context. */
export function commandOf(
  step: RecipeStep,
  index: number,
  ctx: StepContext,
): { cmd: string; user: string } | undefined {
  switch (step.type) {
    case "run":
      return { cmd: step.cmd, user: step.user ?? ctx.user };
    case "apt_install":
      return {
        cmd:
          "export DEBIAN_FRONTEND=noninteractive && apt-get update -q && " +
          `apt-get install -y -q --no-install-recommends ${packages(step, index)} && ` +
          "apt-get clean && rm -rf /var/lib/apt/lists/*",
        user: "root",
      };
    case "pip_install":
      return {
        cmd: `pip3 install --no-cache-dir --break-system-packages ${packages(step, index)}`,
        user: "root",
      };
    case "npm_install":
      return step.global
        ? { cmd: `npm install -g --no-fund --no-audit ${packages(step, index)}`, user: "root" }
        : { cmd: `npm install --no-fund --no-audit ${packages(step, index)}`, user: ctx.user };
    default:
      return undefined;
  }
}

/** One line for the build log. */
export function describeStep(step: RecipeStep): string {
  switch (step.type) {
    case "run":
      return `RUN ${step.cmd}`;
    case "apt_install":
      return `APT INSTALL ${step.packages.join(" ")}`;
    case "pip_install":
      return `PIP INSTALL ${step.packages.join(" ")}`;
    case "npm_install":
      return `NPM INSTALL${step.global ? " -g" : ""} ${step.packages.join(" ")}`;
    case "copy":
      return `COPY ${step.files.length} file(s) → ${step.dest}`;
    case "env":
      return `ENV ${Object.keys(step.envs).join(" ")}`;
    case "workdir":
      return `WORKDIR ${step.path}`;
    case "user":
      return `USER ${step.name}`;
    case "start":
      return `START ${step.cmd}`;
  }
}

/** Steps that only change what later steps see (and the template's defaults): no layer of their own. */
export function isContextStep(step: RecipeStep): boolean {
  return (
    step.type === "env" || step.type === "workdir" || step.type === "user" || step.type === "start"
  );
}

/**
 * The cache key of a layer: its parent's key, the step with the context it runs in, and for a
 * copy the hashes of the files (the step names them by hash already).
 */
export function layerKey(parentKey: string, step: RecipeStep, ctx: StepContext): string {
  return createHash("sha256").update(JSON.stringify({ parentKey, step, ctx })).digest("hex");
}

/** Checks what the schema cannot: copied files are in the request, paths absolute, one start command. */
export function checkRecipe(recipe: Recipe): void {
  let starts = 0;
  for (const [index, step] of recipe.steps.entries()) {
    const where = `steps[${index}]`;
    if (step.type === "copy") {
      if (!step.dest.startsWith("/")) {
        throw new ServerError("invalid_argument", `${where}: dest must be an absolute path`);
      }
      for (const file of step.files) {
        if (!recipe.files[file.sha256]) {
          throw new ServerError(
            "invalid_argument",
            `${where}: file ${JSON.stringify(file.path)} (sha256 ${file.sha256}) is not in "files"`,
          );
        }
        if (file.path.startsWith("/") || file.path.split("/").includes("..")) {
          throw new ServerError(
            "invalid_argument",
            `${where}: file path ${JSON.stringify(file.path)} must be relative, without ".."`,
          );
        }
      }
    }
    if (step.type === "workdir" && !step.path.startsWith("/")) {
      throw new ServerError("invalid_argument", `${where}: workdir must be an absolute path`);
    }
    if (step.type === "start") starts++;
    commandOf(step, index, { envs: {}, workdir: undefined, user: "root" });
  }
  if (starts > 1) throw new ServerError("invalid_argument", "a recipe has at most one start step");
  for (const [hash, content] of Object.entries(recipe.files)) {
    if (createHash("sha256").update(content).digest("hex") !== hash) {
      throw new ServerError(
        "invalid_argument",
        `files: content of ${hash} does not match its sha256`,
      );
    }
  }
}
