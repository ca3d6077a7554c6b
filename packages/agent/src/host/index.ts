export type { CommandResult, CommandSpec } from "./command.js";
export { CommandError, runCommand, runCommands } from "./command.js";
export { Rollback } from "./rollback.js";
