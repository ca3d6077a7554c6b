/**
 * The Wrenn SDK: create isolated sandboxes, run commands and terminals in them, and move files
 * in and out.
 *
 * @example
 * ```ts
 * import { Sandbox } from "@wrenn/sdk";
 * const sandbox = await Sandbox.create();
 * const { stdout } = await sandbox.commands.run("echo hello");
 * await sandbox.kill();
 * ```
 * @packageDocumentation
 */
export type {
  CodeContext,
  CreateCodeContextOpts,
  ExecutionError,
  OutputMessage,
  RunCodeOpts,
} from "./code-interpreter/index.js";
export { CODE_INTERPRETER_PORT, Execution, Result } from "./code-interpreter/index.js";
export type {
  ConnectOpts,
  HandleOptions,
  OutputCallbacks,
  OutputChunk,
  OutputStream,
  ProcessInfo,
  ProcessOpts,
  RunOpts,
  StdinSource,
} from "./commands/index.js";
export { CommandHandle, Commands } from "./commands/index.js";
export type {
  ConfigSource,
  ConnectionOpts,
  LoadConfigOptions,
  ResolvedConfig,
} from "./config/index.js";
export { DEFAULT_API_URL, loadConfig } from "./config/index.js";
export type { CommandResult, WrennErrorOptions } from "./errors/index.js";
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
} from "./errors/index.js";
export type {
  EntryInfo,
  EntryType,
  FilesystemEvent,
  ReadOpts,
  WatchHandle,
  WatchOpts,
  WriteData,
  WriteInfo,
  WriteOpts,
} from "./files/index.js";
export { Files } from "./files/index.js";
export type {
  ApiClientOptions,
  BodyLike,
  CallOptions,
  FetchInit,
  FetchLike,
  Query,
  RequestOpts,
  RetryPolicy,
  WireResponse,
} from "./http/index.js";
export { ApiClient } from "./http/index.js";
export type { Page } from "./pagination/index.js";
export { Paginator } from "./pagination/index.js";
export type { PtyCreateOpts, PtySize } from "./pty/index.js";
export { Pty, PtyHandle } from "./pty/index.js";
export type {
  SandboxCreateOpts,
  SandboxInfo,
  SandboxListOpts,
  SandboxMetrics,
  SandboxNetworkInfo,
  SandboxNetworkRules,
  SandboxState,
} from "./sandbox/index.js";
export { Sandbox } from "./sandbox/index.js";
export type { SnapshotInfo } from "./snapshot/index.js";
export { Snapshot } from "./snapshot/index.js";
export type {
  ParsedDockerfile,
  ReadyCheck,
  TemplateBuildEvent,
  TemplateBuildOpts,
  TemplateInfo,
  TemplateStep,
} from "./template/index.js";
export {
  DockerfileError,
  MAX_COPY_BYTES,
  parseDockerfile,
  Template,
  TemplateBuildError,
} from "./template/index.js";

/** The paginator `Sandbox.list()` returns. */
export type SandboxPaginator = import("./pagination/index.js").Paginator<
  import("./sandbox/index.js").SandboxInfo
>;
