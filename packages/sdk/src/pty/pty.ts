import { CommandHandle, killProcess, openHandle } from "../commands/index.js";
import { type ApiClient, limitOf, type RequestOpts } from "../http/index.js";

/** A terminal size in character cells. */
export interface PtySize {
  cols: number;
  rows: number;
}

/** Options of {@link Pty.create}. */
export interface PtyCreateOpts extends PtySize, RequestOpts {
  /** Every chunk the terminal prints, raw (escape sequences included). */
  onData: (data: Uint8Array) => void;
  /** The program to run (through `/bin/sh -c`); default the user's login shell. */
  cmd?: string;
  cwd?: string;
  /** Extra environment; `TERM` defaults to `xterm-256color`. */
  envs?: Record<string, string>;
  user?: string;
  /** Tag to find the session by later. */
  tag?: string;
  /**
   * Not a limit on this call, unlike elsewhere: the session's, after which the terminal is
   * killed (0 or Infinity, the default: none).
   */
  timeoutMs?: number;
}

/** A terminal session: a {@link CommandHandle} whose output is the terminal's. */
export class PtyHandle extends CommandHandle {
  /** Types into the terminal. */
  sendInput(data: string | Uint8Array): Promise<void> {
    return this.sendStdin(data);
  }

  /** Resizes the terminal. */
  resize(size: PtySize): Promise<void> {
    return this.send({ type: "resize", cols: size.cols, rows: size.rows });
  }
}

/** The user's login shell, found by the sandbox's own `sh` (busybox images have no bash). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: expanded by the sandbox's shell, not here
const LOGIN_SHELL = 'exec "${SHELL:-/bin/sh}" -l';

/** Interactive terminals in one sandbox: `sandbox.pty`. */
export class Pty {
  /** @internal */
  constructor(
    private readonly client: ApiClient,
    private readonly sandboxId: string,
  ) {}

  /** Starts a terminal session; resolves once it runs. */
  create(opts: PtyCreateOpts): Promise<PtyHandle> {
    return openHandle(
      this.client,
      this.sandboxId,
      {
        type: "start",
        cmd: opts.cmd ?? LOGIN_SHELL,
        envs: { TERM: "xterm-256color", ...opts.envs },
        pty: { cols: opts.cols, rows: opts.rows },
        stdin: true,
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        ...(opts.user ? { user: opts.user } : {}),
        ...(opts.tag ? { tag: opts.tag } : {}),
        ...(opts.timeoutMs && limitOf(opts.timeoutMs) ? { timeout_ms: opts.timeoutMs } : {}),
      },
      {
        onData: opts.onData,
        throwOnError: false,
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      (...args) => new PtyHandle(...args),
    );
  }

  /** Attaches to a running terminal session by pid or tag. */
  connect(
    pidOrTag: number | string,
    opts: RequestOpts & { onData: (data: Uint8Array) => void },
  ): Promise<PtyHandle> {
    return openHandle(
      this.client,
      this.sandboxId,
      typeof pidOrTag === "number"
        ? { type: "connect", pid: pidOrTag }
        : { type: "connect", tag: pidOrTag },
      {
        onData: opts.onData,
        throwOnError: false,
        ...(opts.signal ? { signal: opts.signal } : {}),
        attachTimeoutMs: opts.timeoutMs ?? this.client.defaultTimeoutMs,
      },
      (...args) => new PtyHandle(...args),
    );
  }

  /** Ends a terminal session (SIGKILL); false when it does not exist. */
  kill(pid: number, opts: RequestOpts = {}): Promise<boolean> {
    return killProcess(this.client, this.sandboxId, pid, opts);
  }
}
