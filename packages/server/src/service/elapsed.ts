/** Milliseconds since `started` (a `performance.now()`), to two decimals, for operation logs. */
export function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100;
}
