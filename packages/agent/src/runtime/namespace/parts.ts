import { join } from "node:path";
import type { Logger } from "pino";
import type { SandboxCgroup } from "../../cgroup/index.js";
import type { AddressPool, SandboxNetwork } from "../../network/index.js";
import type { StateStore } from "../../state/index.js";
import type { DiskPool, SandboxDisk } from "../../storage/index.js";
import type { TemplateStore } from "../../template/index.js";
import type { EnvdTarget } from "../envd-health.js";
import type { HostWatch } from "../host-watch.js";
import type { LiveBase, SandboxTable } from "../sandbox-table.js";
import type { WarmPool, WarmPoolSetting } from "../warm-pool/index.js";

export const ENVD_PORT = 49983;
/** Every sandbox's hostname: a pooled one is launched before its id is known. */
export const SANDBOX_HOSTNAME = "sandbox";

export interface NamespaceRuntimeOptions {
  /** State directory: sandboxes/<id>/ and templates/<name>/. */
  agentDir: string;
  /** Host directory holding envd.js, mounted read-only into every sandbox. */
  envdDir: string;
  logger: Logger;
  /** Default: from WRENN_SANDBOX_CIDR, else 10.213.0.0/16. */
  addressPool?: AddressPool;
  /** Most tasks per sandbox (fork bombs stop here). */
  pidsLimit?: number;
  /** How long create waits for envd's /health. */
  envdReadyTimeoutMs?: number;
  /**
   * Ready sandboxes kept per template: fixed sizes, or `auto` (sized from create rate and bursts
   * within a memory budget); none by default. A template's pool fills once the template
   * exists: at adopt if it is built already, else after a create builds it (or, in auto mode,
   * at the next look a few seconds later).
   */
  warmPool?: WarmPoolSetting;
  /** Quiet time after the last create before a refill build starts (default 100 ms). */
  warmPoolRefillDelayMs?: number;
}

/** What the namespace runtime holds for a live sandbox. */
export interface Live extends LiveBase {
  network?: SandboxNetwork;
  cgroup?: SandboxCgroup;
  disk?: SandboxDisk;
  lastCpu?: { at: number; usec: number };
}

/** The namespace runtime's parts, shared by the files that implement its seams. */
export interface NamespaceParts {
  readonly name: string;
  readonly opts: NamespaceRuntimeOptions;
  readonly logger: Logger;
  readonly state: StateStore;
  readonly pool: AddressPool;
  /** Disks made ahead of time, so a create renames one instead of running mkfs and mount. */
  readonly disks: DiskPool;
  readonly templateStore: TemplateStore;
  /** By public id; pooled sandboxes are only in `warm`. */
  readonly sandboxes: SandboxTable<Live>;
  readonly warm: WarmPool<Live>;
  readonly watch: HostWatch<Live>;
}

/** The disk gets a directory of its own beside sandbox.json. */
export function storageDir(sandboxDir: string): string {
  return join(sandboxDir, "storage");
}

/** Where the agent reaches a sandbox's envd, with the token envd requires. */
export function envdOf(live: Live): EnvdTarget {
  return {
    host: live.network!.sandboxAddress,
    port: ENVD_PORT,
    ...(live.record.envdAccessToken !== undefined && {
      accessToken: live.record.envdAccessToken,
    }),
  };
}
