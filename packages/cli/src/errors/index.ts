export type { CliErrorCode } from "./cli-error.js";
export { CliError } from "./cli-error.js";
export type { ErrorContext, ErrorReport } from "./describe.js";
export { describeError } from "./describe.js";
