import type { ServiceImpl } from "@connectrpc/connect";
import type { Process } from "@wrenn/proto/process";
import { ProcessManager } from "./manager.js";
import { processService } from "./service.js";

export type { ExitInfo } from "./exit-status.js";
export type { ProcessManager } from "./manager.js";

/**
 * envd's process.Process service and its shutdown (SIGTERM, then SIGKILL, to every process it
 * started). `spawnHelper`: the path of wrenn-spawn; without one (or when it is missing), every
 * process starts with Node's spawn.
 */
export function createProcessService(spawnHelper?: string): {
  service: ServiceImpl<typeof Process>;
  manager: ProcessManager;
  close(): Promise<void>;
} {
  const manager = new ProcessManager(spawnHelper);
  return { service: processService(manager), manager, close: () => manager.close() };
}
