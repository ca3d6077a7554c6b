export type { StartState } from "./start-command.js";
export { launchStartCommand, START_TAG } from "./start-command.js";
export type { ReadyCheck, StartSpec, TemplateDefaults } from "./start-spec.js";
