/**
 * Test hook for the crash suite: `WRENN_CRASH_AT=<step>` (e.g. `create:network`) makes the
 * process SIGKILL itself when it reaches that named step, so a test can prove that a restart
 * after a kill -9 at any step leaks nothing. A no-op unless the variable names the step; never
 * set it outside tests.
 */
export const CRASH_AT_ENV = "WRENN_CRASH_AT";

export function crashPoint(step: string): void {
  if (process.env[CRASH_AT_ENV] !== step) return;
  // stderr is unbuffered for a pipe or file: the line is written before the kill.
  process.stderr.write(`${CRASH_AT_ENV}=${step}: killing this process\n`);
  process.kill(process.pid, "SIGKILL");
}
