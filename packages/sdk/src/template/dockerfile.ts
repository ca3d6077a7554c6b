import { WrennError } from "../errors/index.js";
import type { TemplateStep } from "./template.js";

/** A Dockerfile instruction Wrenn does not take, with the line it is on. */
export class DockerfileError extends WrennError {
  static override readonly kind: string = "DockerfileError";

  constructor(
    readonly line: number,
    reason: string,
  ) {
    super(`Dockerfile line ${line}: ${reason}`, { code: "invalid_argument" });
  }
}

/** A Dockerfile read as a template recipe. `copy` sources are relative to the build context. */
export interface ParsedDockerfile {
  from: { template: string };
  steps: TemplateStep[];
}

/** Debian suites the `base` template (bookworm) stands for. */
const BASE_SUITES = new Set(["", "latest", "stable", "bookworm", "bookworm-slim", "12", "12-slim"]);

/** One instruction: its keyword, arguments, and the line it starts on. */
interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split(/\r?\n/);
  let current: Instruction | undefined;
  for (const [i, raw] of lines.entries()) {
    const trimmed = raw.trim();
    // Comments (and parser directives) are dropped, also inside a continued instruction.
    if (trimmed.startsWith("#") || (trimmed === "" && !current)) continue;
    const continued = trimmed.endsWith("\\");
    const body = continued ? trimmed.slice(0, -1) : trimmed;
    if (current) current.args += ` ${body}`;
    else {
      const match = /^(\S+)\s*(.*)$/.exec(body);
      current = { keyword: (match?.[1] ?? "").toUpperCase(), args: match?.[2] ?? "", line: i + 1 };
    }
    if (!continued) {
      current.args = current.args.trim();
      out.push(current);
      current = undefined;
    }
  }
  if (current) out.push(current);
  return out;
}

/** `["a", "b"]` (exec form) → its strings; undefined for the shell form. */
function execForm(args: string, line: number): string[] | undefined {
  if (!args.startsWith("[")) return undefined;
  try {
    const parsed = JSON.parse(args) as unknown;
    if (Array.isArray(parsed) && parsed.every((a) => typeof a === "string")) return parsed;
  } catch {
    // fall through
  }
  throw new DockerfileError(line, "the exec form must be a JSON array of strings");
}

const shellQuote = (s: string) =>
  /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;

/** A command in either form, as one shell string. */
function commandOf(args: string, line: number): string {
  const exec = execForm(args, line);
  return exec ? exec.map(shellQuote).join(" ") : args;
}

/** `$NAME` and `${NAME}` of the ARGs and ENVs so far; unknown names stay as they are. */
function substitute(value: string, vars: Map<string, string>): string {
  return value.replace(
    /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (all, a, b) => {
      const v = vars.get((a ?? b) as string);
      return v ?? all;
    },
  );
}

/** An absolute path for `dest`, relative ones taken from `dir`, with `.` and `..` resolved. */
function resolveIn(dir: string, dest: string): string {
  const parts: string[] = [];
  for (const part of (dest.startsWith("/") ? dest : `${dir}/${dest}`).split("/")) {
    if (part === "..") parts.pop();
    else if (part && part !== ".") parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/** `K=V K2="V 2"` or the legacy `K V`. */
function envPairs(args: string, line: number): [string, string][] {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)\s+(.*)$/.exec(args);
    if (!match) throw new DockerfileError(line, "ENV needs NAME=value");
    return [[match[1] as string, match[2] as string]];
  }
  const pairs: [string, string][] = [];
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)\s*/gy;
  let at = 0;
  for (let m = re.exec(args); m; m = re.exec(args)) {
    let value = m[2] as string;
    if (value.startsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, "$1");
    else if (value.startsWith("'")) value = value.slice(1, -1);
    pairs.push([m[1] as string, value]);
    at = re.lastIndex;
  }
  if (at !== args.length) throw new DockerfileError(line, "ENV needs NAME=value pairs");
  return pairs;
}

/** Why an instruction is not taken. */
const REFUSED: Record<string, string> = {
  EXPOSE: "ports are not published by the template; use a start command with a ready check",
  VOLUME: "sandboxes have no volumes",
  HEALTHCHECK: "use a start command's ready check instead",
  ONBUILD: "templates have no build triggers",
  STOPSIGNAL: "sandboxes are stopped by Wrenn",
  SHELL: "steps run with /bin/sh",
  LABEL: "templates carry no labels",
  MAINTAINER: "templates carry no labels",
};

/**
 * Reads the Dockerfile subset Wrenn builds: `FROM wrenn/<template>` (or a Debian image, which is
 * `base`), `RUN`, `COPY`/`ADD` of local files, `ENV`, `WORKDIR`, `USER`, `ARG`, and `CMD`/
 * `ENTRYPOINT` as the start command. Anything else throws {@link DockerfileError} with its line.
 */
export function parseDockerfile(
  text: string,
  opts: { buildArgs?: Record<string, string> } = {},
): ParsedDockerfile {
  const vars = new Map<string, string>();
  const steps: TemplateStep[] = [];
  let from: { template: string } | undefined;
  // Where relative COPY destinations go: a Debian image's is `/`; a template's own is not known.
  let workdir: string | undefined;
  let entrypoint: string | undefined;
  let cmd: string | undefined;
  // Docker runs RUN and owns COPY as root until USER; sandboxes keep Wrenn's default user then.
  let user: string | undefined;
  for (const { keyword, args: rawArgs, line } of instructions(text)) {
    const args =
      keyword === "RUN" || keyword === "CMD" || keyword === "ENTRYPOINT"
        ? rawArgs
        : substitute(rawArgs, vars);
    if (keyword !== "ARG" && keyword !== "FROM" && !from) {
      throw new DockerfileError(line, `${keyword} before FROM`);
    }
    switch (keyword) {
      case "FROM": {
        if (from)
          throw new DockerfileError(line, "one FROM only (multi-stage builds are not supported)");
        const image = args.split(/\s+/)[0] ?? "";
        if (/\s+AS\s+/i.test(args))
          throw new DockerfileError(line, "FROM … AS (stages) is not supported");
        const wrenn = /^wrenn\/([A-Za-z0-9_-][A-Za-z0-9._-]{0,63})(?::latest)?$/.exec(image);
        const debian = /^(?:docker\.io\/)?(?:library\/)?debian(?::(.+))?$/.exec(image);
        if (wrenn) from = { template: wrenn[1] as string };
        else if (debian && BASE_SUITES.has(debian[1] ?? "")) {
          from = { template: "base" };
          workdir = "/";
        } else if (debian)
          throw new DockerfileError(line, `the base template is Debian bookworm, not ${debian[1]}`);
        else
          throw new DockerfileError(
            line,
            `FROM takes wrenn/<template> or debian:bookworm, not ${JSON.stringify(image)}`,
          );
        break;
      }
      case "ARG": {
        const match = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(args);
        if (!match) throw new DockerfileError(line, "ARG needs NAME or NAME=default");
        const name = match[1] as string;
        const value = opts.buildArgs?.[name] ?? match[2];
        if (value !== undefined) vars.set(name, value.replace(/^"(.*)"$/, "$1"));
        break;
      }
      case "RUN": {
        if (/^--/.test(args))
          throw new DockerfileError(line, "RUN flags (--mount, --network) are not supported");
        const run = commandOf(args, line);
        // ARGs reach RUN as environment, as in Docker.
        const argPrefix = [...vars].map(([k, v]) => `${k}=${shellQuote(v)}`).join(" ");
        steps.push({
          type: "run",
          cmd: argPrefix ? `export ${argPrefix}; ${run}` : run,
          ...(user ? {} : { user: "root" }),
        });
        break;
      }
      case "COPY":
      case "ADD": {
        let rest = args;
        let owner = "root";
        let mode: number | undefined;
        for (
          let flag = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest);
          flag;
          flag = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)
        ) {
          if (flag[1] === "chown") owner = (flag[2] ?? "").split(":")[0] || "root";
          else if (flag[1] === "chmod") {
            if (!/^[0-7]{3,4}$/.test(flag[2] ?? "")) {
              throw new DockerfileError(
                line,
                `${keyword} --chmod takes an octal mode (--chmod=755), not ${JSON.stringify(flag[2] ?? "")}`,
              );
            }
            mode = Number.parseInt(flag[2] as string, 8);
          } else if (flag[1] !== "link") {
            throw new DockerfileError(
              line,
              `${keyword} --${flag[1]} is not supported (only local files)`,
            );
          }
          rest = rest.slice(flag[0].length);
        }
        const parts = execForm(rest, line) ?? rest.split(/\s+/).filter(Boolean);
        if (parts.length < 2)
          throw new DockerfileError(line, `${keyword} needs a source and a destination`);
        const dest = parts.at(-1) as string;
        if (!dest.startsWith("/") && workdir === undefined) {
          throw new DockerfileError(
            line,
            `${keyword} to a relative destination needs a WORKDIR first (that of wrenn/${from?.template} is not known here)`,
          );
        }
        // A destination ending in "/" (or ".", or taking several sources) is a directory: a file
        // goes into it under its own name, a directory's contents go into it (as in Docker).
        const into = /(^|\/)\.{0,2}$/.test(dest) || parts.length > 2;
        const resolved = resolveIn(workdir ?? "/", dest);
        const target = into && resolved !== "/" ? `${resolved}/` : resolved;
        for (const src of parts.slice(0, -1)) {
          if (/^[a-z]+:\/\//i.test(src))
            throw new DockerfileError(
              line,
              `${keyword} of a URL is not supported, only local files`,
            );
          if (/[*?[]/.test(src))
            throw new DockerfileError(line, `${keyword} with wildcards is not supported`);
          if (src.startsWith("/") || src.split("/").includes("..")) {
            throw new DockerfileError(
              line,
              `${keyword} source ${JSON.stringify(src)} is outside the build context`,
            );
          }
          if (keyword === "ADD" && /\.(tar|tgz|tar\.(gz|xz|bz2))$/.test(src)) {
            throw new DockerfileError(
              line,
              "ADD of an archive (auto-extraction) is not supported; COPY it and RUN tar",
            );
          }
          steps.push({
            type: "copy",
            src,
            dest: target,
            user: owner,
            ...(mode === undefined ? {} : { mode }),
          });
        }
        break;
      }
      case "ENV": {
        const envs = Object.fromEntries(envPairs(args, line));
        for (const [k, v] of Object.entries(envs)) vars.set(k, v);
        steps.push({ type: "env", envs });
        break;
      }
      case "WORKDIR":
        if (!args.startsWith("/"))
          throw new DockerfileError(line, "WORKDIR must be an absolute path");
        workdir = args;
        steps.push({ type: "run", cmd: `mkdir -p ${shellQuote(args)}`, user: "root" });
        steps.push({ type: "workdir", path: args });
        break;
      case "USER":
        user = args.split(":")[0] as string;
        steps.push({ type: "user", name: user });
        break;
      case "CMD":
        cmd = commandOf(args, line);
        break;
      case "ENTRYPOINT":
        entrypoint = commandOf(args, line);
        break;
      default:
        throw new DockerfileError(
          line,
          REFUSED[keyword]
            ? `${keyword}: ${REFUSED[keyword]}`
            : `unknown or unsupported instruction ${keyword}`,
        );
    }
  }
  if (!from) throw new DockerfileError(1, "no FROM");
  const start = [entrypoint, cmd].filter(Boolean).join(" ");
  if (start) steps.push({ type: "start", cmd: start });
  return { from, steps };
}
