export { CODE_INTERPRETER_PACKAGES, CODE_INTERPRETER_PORT } from "./code-interpreter/index.js";
export { DEBIAN_PACKAGES, DEBIAN_SUITE, debianMirror } from "./debian-base.js";
export { copyInto, sharedLibraries } from "./minimal.js";
export { assertSafeName, isSafeName } from "./safe-name.js";
export type { EnsureTemplateOptions, TemplateStoreOptions, WriteSnapshotOptions } from "./store.js";
export { BUILTIN_TEMPLATES, TemplateStore } from "./store.js";
export type { ProgressFn, TemplateInfo, TemplateKind } from "./types.js";
