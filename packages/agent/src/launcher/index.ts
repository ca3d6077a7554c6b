export type { LaunchedSandbox, LaunchSandboxOptions, SandboxProcess } from "./launch.js";
export {
  ENVD_COMMAND,
  ENVD_MOUNT_DIR,
  isSandboxAlive,
  killSandbox,
  launchSandbox,
  SANDBOX_CAPABILITIES,
  SANDBOX_OOM_SCORE_ADJ,
} from "./launch.js";
export type { ProcStat } from "./proc.js";
export { readProcStat } from "./proc.js";
export type { SeccompArch, SockFilter } from "./seccomp.js";
export {
  ABSENT_SYSCALLS,
  DENIED_SYSCALLS,
  FLAG_CHECKED_SYSCALLS,
  seccompFilterBytes,
  seccompProgram,
} from "./seccomp.js";
