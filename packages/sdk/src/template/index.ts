export { MAX_COPY_BYTES } from "./copy.js";
export type { ParsedDockerfile } from "./dockerfile.js";
export { DockerfileError, parseDockerfile } from "./dockerfile.js";
export type {
  ReadyCheck,
  TemplateBuildEvent,
  TemplateBuildOpts,
  TemplateInfo,
  TemplateStep,
} from "./template.js";
export { Template, TemplateBuildError } from "./template.js";
