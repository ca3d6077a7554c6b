export type {
  ConnectOpts,
  ProcessInfo,
  ProcessOpts,
  RunOpts,
  StdinSource,
} from "./commands.js";
export { Commands, openHandle } from "./commands.js";
export type { HandleOptions, OutputCallbacks, OutputChunk, OutputStream } from "./handle.js";
export { CommandHandle, killProcess } from "./handle.js";
export type { ExecSocket, SocketMessage } from "./socket.js";
