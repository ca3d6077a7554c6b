export { ApiCommand } from "./api-command.js";
export type { ArgsOf, FlagsOf } from "./base-command.js";
export { BaseCommand } from "./base-command.js";
