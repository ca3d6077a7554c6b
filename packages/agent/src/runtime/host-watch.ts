import type { Logger } from "pino";
import {
  type AddressPool,
  applyNetworkPolicy,
  ensureHostFirewall,
  hostFirewallCurrent,
  type SandboxNetwork,
} from "../network/index.js";
import type { LiveBase } from "./sandbox-table.js";

const WATCH_INTERVAL_MS = 2_000;

export interface HostWatchOptions<L extends LiveBase> {
  pool: AddressPool;
  logger: Logger;
  /** The runtime's live sandboxes, read at every check. */
  sandboxes: () => Iterable<L>;
  network: (live: L) => SandboxNetwork | undefined;
  /** Whether the sandbox's first process (or VM) still runs. */
  alive: (live: L) => Promise<boolean>;
}

/**
 * The host-wide parts a runtime depends on, checked every 2 s: the firewall (put back, with its
 * internet members, when something removed it) and each sandbox's main process (a sandbox
 * whose process died turns to `error`; its resources stay until it is destroyed).
 */
export class HostWatch<L extends LiveBase> {
  private readonly opts: HostWatchOptions<L>;
  private firewall: Promise<unknown> | undefined;
  private checkingFirewall = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: HostWatchOptions<L>) {
    this.opts = opts;
  }

  /** Installs the firewall once and starts the checks; resolves when the firewall is there. */
  ensureStarted(): Promise<unknown> {
    this.timer ??= setInterval(() => {
      void this.watchProcesses();
      void this.watchFirewall();
    }, WATCH_INTERVAL_MS).unref();
    this.firewall ??= ensureHostFirewall({ cidr: this.opts.pool.cidr }).catch((err: unknown) => {
      this.firewall = undefined;
      throw err;
    });
    return this.firewall;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async watchFirewall(): Promise<void> {
    if (this.checkingFirewall || !this.firewall) return;
    this.checkingFirewall = true;
    try {
      await this.firewall;
      if (await hostFirewallCurrent()) return;
      this.opts.logger.warn(
        "the host firewall was removed or replaced from outside; installing it again",
      );
      await ensureHostFirewall({ cidr: this.opts.pool.cidr });
      for (const live of this.opts.sandboxes()) {
        const network = this.opts.network(live);
        if (network) await applyNetworkPolicy(network, live.record, { reapply: true });
      }
    } catch (err) {
      this.opts.logger.error({ err }, "checking the host firewall failed");
    } finally {
      this.checkingFirewall = false;
    }
  }

  private async watchProcesses(): Promise<void> {
    for (const live of this.opts.sandboxes()) {
      const watched = () =>
        (live.state === "running" || live.state === "paused") && live.record.phase !== "destroying";
      if (!watched() || (await this.opts.alive(live)) || !watched()) continue;
      live.state = "error";
      live.error = "the sandbox's processes exited";
      this.opts.logger.warn({ sandboxId: live.record.id }, "sandbox exited");
    }
  }
}
