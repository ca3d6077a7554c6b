export { ndjsonBuildLog } from "./build-log.js";
export type { BuildEvent, BuiltTemplate } from "./events.js";
export type { CopyFile, ReadyCheck, Recipe, RecipeStep } from "./recipe.js";
export { TemplateService } from "./template-service.js";
