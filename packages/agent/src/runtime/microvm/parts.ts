import type { Logger } from "pino";
import type { AddressPool, SandboxNetwork } from "../../network/index.js";
import type { StateStore } from "../../state/index.js";
import type { TemplateStore } from "../../template/index.js";
import type { HostWatch } from "../host-watch.js";
import type { LiveBase, SandboxTable } from "../sandbox-table.js";
import type { Accel, VmPaths } from "./qemu.js";
import type { VmStore } from "./vm-store.js";

export interface MicroVmRuntimeOptions {
  /** State directory, shared with the other runtimes (sandboxes/<id>/, templates/<name>/). */
  agentDir: string;
  /** Host directory holding envd.js, copied into every base image. */
  envdDir: string;
  logger: Logger;
  /** Default: from WRENN_SANDBOX_CIDR, else 10.213.0.0/16 (share it with the other runtimes). */
  addressPool?: AddressPool;
  /** Shared with the namespace runtime, so both see the same templates. */
  templateStore?: TemplateStore;
  /** How long a boot waits for envd (TCG boots take seconds). */
  bootTimeoutMs?: number;
  /** Read the whole RAM back at resume instead of mapping it (slower; for comparison). */
  eagerRestore?: boolean;
  /** Skip KVM detection (tests, hosts known to lack it). */
  accel?: Accel;
}

/** What the microVM runtime holds for a live sandbox. */
export interface VmLive extends LiveBase {
  network?: SandboxNetwork;
  /** The sandbox's `vm/` files. */
  paths: VmPaths;
  lastCpu?: { at: number; ticks: number };
  /** A pause or resume is ending or starting QEMU: the process watchdog looks away. */
  switching?: boolean;
}

/** The runtime's parts, shared by the files implementing its seams. */
export interface VmParts {
  readonly name: string;
  readonly opts: MicroVmRuntimeOptions;
  readonly logger: Logger;
  readonly state: StateStore;
  readonly pool: AddressPool;
  readonly templateStore: TemplateStore;
  readonly store: VmStore;
  readonly sandboxes: SandboxTable<VmLive>;
  readonly watch: HostWatch<VmLive>;
  /** Resolved once: the kernel, its initramfs and the accelerator. */
  readonly host: () => Promise<VmHost>;
}

export interface VmHost {
  kernel: string;
  initrd: string;
  accel: Accel;
}

/** Every guest's MAC: each sits alone on its tap, and a restored VM keeps the one it had. */
export const GUEST_MAC = "52:54:00:00:00:02";
