import { constants } from "node:os";

/** How a process ended, as sent in the stream's `end` event. */
export interface ExitInfo {
  /** The exit code; -1 when a signal ended the process (like Go's ProcessState.ExitCode). */
  exitCode: number;
  /** True when the process exited by itself, false when a signal ended it or it never ran. */
  exited: boolean;
  /** Go's ProcessState.String(): "exit status 1", "signal: killed". */
  status: string;
  /**
   * As E2B's envd (Go's cmd.Wait() error): the status again when the process failed or was
   * signalled, what went wrong when it never started; absent for a clean exit.
   */
  error?: string;
}

// Go's names for signals (syscall.Signal.String()), which E2B's envd reports.
const goSignalNames: Record<string, string> = {
  SIGHUP: "hangup",
  SIGINT: "interrupt",
  SIGQUIT: "quit",
  SIGILL: "illegal instruction",
  SIGTRAP: "trace/breakpoint trap",
  SIGABRT: "aborted",
  SIGBUS: "bus error",
  SIGFPE: "floating point exception",
  SIGKILL: "killed",
  SIGUSR1: "user defined signal 1",
  SIGSEGV: "segmentation fault",
  SIGUSR2: "user defined signal 2",
  SIGPIPE: "broken pipe",
  SIGALRM: "alarm clock",
  SIGTERM: "terminated",
};

const signalNamesByNumber = new Map<number, string>(
  Object.entries(constants.signals).map(([name, number]) => [number, name]),
);

/** The exit as Go would describe it. `signal` is a name ("SIGKILL") or a number (node-pty). */
export function exitInfo(
  code: number | null,
  signal: NodeJS.Signals | number | null | undefined,
): ExitInfo {
  const name =
    typeof signal === "number"
      ? signal > 0
        ? signalNamesByNumber.get(signal)
        : undefined
      : signal;
  if (name) {
    const number = constants.signals[name as NodeJS.Signals];
    const status = `signal: ${goSignalNames[name] ?? `signal ${number}`}`;
    return { exitCode: -1, exited: false, status, error: status };
  }
  const exitCode = code ?? 0;
  const status = `exit status ${exitCode}`;
  return { exitCode, exited: true, status, ...(exitCode !== 0 ? { error: status } : {}) };
}

/** A process that could not be started: never ran, so no exit status of its own. */
export function spawnFailure(message: string, errno?: string): ExitInfo {
  // The shell's conventions: 127 for a missing command, 126 for one that cannot be executed.
  const exitCode = errno === "ENOENT" ? 127 : errno === "EACCES" ? 126 : -1;
  return { exitCode, exited: false, status: "not started", error: message };
}
