import type { ReadStream } from "node:tty";

/**
 * Puts the terminal in raw mode (every key, Ctrl-C and Ctrl-D included, goes to the sandbox as a
 * byte) and returns the function that restores it. Restoring also runs on process exit and on
 * the signals that would otherwise end the process with the terminal still raw.
 */
export function enterRawMode(stdin: ReadStream = process.stdin as ReadStream): () => void {
  stdin.setRawMode(true);
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    process.off("exit", restore);
    for (const [signal, handler] of handlers) process.off(signal, handler);
    stdin.setRawMode(false);
  };
  const handlers = (["SIGTERM", "SIGHUP"] as const).map((signal) => {
    const handler = () => {
      restore();
      process.kill(process.pid, signal);
    };
    process.once(signal, handler);
    return [signal, handler] as const;
  });
  process.on("exit", restore);
  return restore;
}
