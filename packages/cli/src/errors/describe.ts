import {
  AuthenticationError,
  ConflictError,
  ConnectionError,
  NotEnoughSpaceError,
  NotFoundError,
  RateLimitError,
  SandboxError,
  TimeoutError,
  WrennError,
} from "@wrenn/sdk";
import { CliError } from "./cli-error.js";

/** What the one error path prints: a line, the next step, the exit code. */
export interface ErrorReport {
  code: string;
  message: string;
  hint?: string;
  exitCode: number;
}

export interface ErrorContext {
  /** The server the command talked to, when it got that far. */
  apiUrl?: string;
}

/** Turns anything thrown by a command into a short message plus what to do next. */
export function describeError(err: unknown, context: ErrorContext = {}): ErrorReport {
  if (err instanceof CliError) {
    return { code: err.code, message: err.message, exitCode: err.exitCode, ...hint(err.hint) };
  }
  const server = context.apiUrl ? ` at ${context.apiUrl}` : "";
  // The SDK files 403 permission_denied (a quota, a file the sandbox user may not touch, a shared
  // host) under AuthenticationError too: only a refused key is the key's fault.
  if (err instanceof AuthenticationError && err.code !== "permission_denied") {
    return {
      code: err.code,
      message: `The server${server} rejected the API key.`,
      hint: "Run `wrenn login` with a valid key, or set WRENN_API_KEY.",
      exitCode: 1,
    };
  }
  if (err instanceof ConnectionError) {
    return {
      code: err.code,
      message: `Cannot reach the Wrenn server${server}.`,
      hint: "Start one with `sudo wrenn server start`, or point --api-url / WRENN_API_URL at a running server.",
      exitCode: 1,
    };
  }
  if (err instanceof WrennError) {
    return { code: err.code, message: sentence(err.message), exitCode: 1, ...hint(nextStep(err)) };
  }
  const local = localFileError(err);
  if (local) return { code: "local_file", message: local, exitCode: 1 };
  const message = err instanceof Error ? err.message : String(err);
  return { code: "internal", message: sentence(message), exitCode: 1 };
}

/**
 * A local file the command could not use (`files cp` to a missing directory, over a file): says
 * which and why, rather than Node's "ENOENT: …, open '…'" and a pointless --debug hint.
 */
function localFileError(err: unknown): string | undefined {
  const { code, syscall, path, message } = err as NodeJS.ErrnoException;
  if (typeof code !== "string" || typeof syscall !== "string" || typeof path !== "string") return;
  const reason = /^E[A-Z]+: ([^,]+)/.exec(message ?? "")?.[1] ?? code;
  return `Cannot ${syscall} ${path} on this machine: ${reason}.`;
}

/** What to do about an error the server reported, by its class. */
function nextStep(err: WrennError): string | undefined {
  if (err instanceof NotFoundError) return notFoundHint(err.message);
  if ((err instanceof ConflictError || err instanceof SandboxError) && aboutTheSandbox(err))
    return "Check its state with `wrenn sandbox info <id>`; a paused sandbox comes back with `wrenn sandbox resume <id>`.";
  if (err instanceof NotEnoughSpaceError)
    return "A disk is full: free space in the sandbox (see `wrenn exec <id> -- df -h`), or create it with a larger --disk.";
  if (err instanceof RateLimitError) return "Too many requests: wait a moment and try again.";
  if (err instanceof TimeoutError)
    return "The server may be busy; try again, or raise --request-timeout where the command has it.";
  return undefined;
}

/**
 * A sandbox that cannot be reached, or a conflict with its state (paused, not running) — not a
 * conflict about a file in it ("not a directory") or a name ("already exists").
 */
function aboutTheSandbox(err: WrennError): boolean {
  if (err.code === "unavailable" || err.code === "host_unreachable") return true;
  return /\bsandbox\b|\bpaused\b|not running/i.test(err.message);
}

/**
 * The server says what was missing first ("sandbox …", "snapshot …"; a template the host lacks
 * after the operation's name); files say ENOENT. Anything else gets no hint rather than a wrong one.
 */
function notFoundHint(message: string): string | undefined {
  if (/^sandbox\b/i.test(message)) return "List your sandboxes with `wrenn sandbox list`.";
  if (/^snapshot\b/i.test(message)) return "List your snapshots with `wrenn snapshot list`.";
  if (/^host\b/i.test(message)) return "List the hosts with `wrenn host list`.";
  if (/^([\w ]+: )?template\b/i.test(message))
    return "List the templates with `wrenn template list`.";
  if (/ENOENT|no such file/i.test(message))
    return "Check the path with `wrenn files ls <id> <dir>`.";
  return undefined;
}

function hint(text: string | undefined): { hint?: string } {
  return text === undefined ? {} : { hint: text };
}

function sentence(text: string): string {
  const trimmed = text.trim() || "Unknown error";
  const first = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}
