/** Machine codes of the CLI's own failures (SDK errors keep theirs). */
export type CliErrorCode =
  | "invalid_argument"
  | "missing_api_key"
  | "bad_config"
  | "missing_credentials"
  | "bad_credentials"
  | "needs_confirmation"
  | "not_found"
  | "host_check_failed"
  | "host_busy"
  | "agent_start_failed";

/** A failure the CLI itself detects: a short message plus the next thing to try. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    readonly code: CliErrorCode,
    message: string,
    /** What to do next, printed under the message. */
    readonly hint?: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
