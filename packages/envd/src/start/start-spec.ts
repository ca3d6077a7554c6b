import { join } from "node:path";
import { EnvdError } from "../errors.js";
import { readSmallFile } from "../small-file.js";

/** How envd decides a start command is ready: a port answering, a file existing, a command succeeding. */
export type ReadyCheck = { port: number } | { file: string } | { cmd: string };

/** `/etc/wrenn/start.json`: a process a template keeps running, started by envd before it reports ready. */
export interface StartSpec {
  cmd: string;
  user: string | undefined;
  cwd: string | undefined;
  envs: Record<string, string>;
  ready: ReadyCheck | undefined;
  readyTimeoutMs: number;
}

/** `/etc/wrenn/defaults.json`: the user, workdir and envs a template gives every process. */
export interface TemplateDefaults {
  user?: string;
  workdir?: string;
  envs?: Record<string, string>;
}

export const START_FILE = "start.json";
export const DEFAULTS_FILE = "defaults.json";
const defaultReadyTimeoutMs = 60_000;
const maxReadyTimeoutMs = 10 * 60_000;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalString(
  obj: Record<string, unknown>,
  key: string,
  file: string,
): string | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value === "") {
    throw new EnvdError("invalid_argument", `${file}: "${key}" must be a non-empty string`);
  }
  return value;
}

function envsOf(value: unknown, file: string): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === "string")) {
    throw new EnvdError("invalid_argument", `${file}: "envs" must map strings to strings`);
  }
  return value as Record<string, string>;
}

function readyOf(value: unknown): ReadyCheck | undefined {
  if (value === undefined) return undefined;
  if (isObject(value)) {
    const { port, file, cmd } = value;
    if (Number.isInteger(port) && (port as number) > 0 && (port as number) < 65536) {
      return { port: port as number };
    }
    if (typeof file === "string" && file !== "") return { file };
    if (typeof cmd === "string" && cmd !== "") return { cmd };
  }
  throw new EnvdError(
    "invalid_argument",
    `${START_FILE}: "ready" must be {"port": 1-65535}, {"file": path} or {"cmd": command}`,
  );
}

/** The most of a config file read. */
const maxConfigBytes = 1024 * 1024;

/** Reads a JSON file of the template's config dir; undefined when it does not exist. */
function readConfig(dir: string, name: string): unknown {
  let text: string;
  try {
    // A FIFO there (a snapshot of a sandbox whose root made one) used to hang envd's start.
    text = readSmallFile(join(dir, name), maxConfigBytes).text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw EnvdError.from(err, name);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new EnvdError("invalid_argument", `${name} is not valid JSON`);
  }
}

/** The start command of the template, if it has one; throws invalid_argument on a malformed file. */
export function readStartSpec(dir: string): StartSpec | undefined {
  const raw = readConfig(dir, START_FILE);
  if (raw === undefined) return undefined;
  if (!isObject(raw)) throw new EnvdError("invalid_argument", `${START_FILE} must be an object`);
  const cmd = optionalString(raw, "cmd", START_FILE);
  if (!cmd) throw new EnvdError("invalid_argument", `${START_FILE}: "cmd" is required`);
  const timeout = raw.readyTimeoutMs ?? defaultReadyTimeoutMs;
  if (
    !Number.isInteger(timeout) ||
    (timeout as number) <= 0 ||
    (timeout as number) > maxReadyTimeoutMs
  ) {
    throw new EnvdError(
      "invalid_argument",
      `${START_FILE}: "readyTimeoutMs" must be an integer in 1..${maxReadyTimeoutMs}`,
    );
  }
  return {
    cmd,
    user: optionalString(raw, "user", START_FILE),
    cwd: optionalString(raw, "cwd", START_FILE),
    envs: envsOf(raw.envs, START_FILE),
    ready: readyOf(raw.ready),
    readyTimeoutMs: timeout as number,
  };
}

/** The template's process defaults, if it sets any. */
export function readTemplateDefaults(dir: string): TemplateDefaults | undefined {
  const raw = readConfig(dir, DEFAULTS_FILE);
  if (raw === undefined) return undefined;
  if (!isObject(raw)) throw new EnvdError("invalid_argument", `${DEFAULTS_FILE} must be an object`);
  return {
    user: optionalString(raw, "user", DEFAULTS_FILE),
    workdir: optionalString(raw, "workdir", DEFAULTS_FILE),
    envs: envsOf(raw.envs, DEFAULTS_FILE),
  };
}
