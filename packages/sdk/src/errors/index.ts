export type { CommandResult, WrennErrorOptions } from "./errors.js";
export {
  AuthenticationError,
  CommandExitError,
  ConflictError,
  ConnectionError,
  InvalidArgumentError,
  NotEnoughSpaceError,
  NotFoundError,
  RateLimitError,
  SandboxError,
  TimeoutError,
  WrennError,
} from "./errors.js";
export type { WireError } from "./from-wire.js";
export { errorFromBody, errorFromResponse, errorFromWire } from "./from-wire.js";
