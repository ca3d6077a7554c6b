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
  private readonly firewall: FirewallWatch;
  private member: FirewallMember | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: HostWatchOptions<L>) {
    this.opts = opts;
    this.firewall = firewallWatchFor(opts.pool);
  }

  /** Installs the firewall once and starts the checks; resolves when the firewall is there. */
  ensureStarted(): Promise<unknown> {
    this.timer ??= setInterval(() => void this.watchProcesses(), WATCH_INTERVAL_MS).unref();
    this.member ??= { logger: this.opts.logger, reapply: () => this.reapplyPolicies() };
    return this.firewall.join(this.member);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.member) this.firewall.leave(this.member);
    this.member = undefined;
  }

  /** After the firewall was put back: this runtime's sandboxes' rules and internet membership. */
  private async reapplyPolicies(): Promise<void> {
    for (const live of this.opts.sandboxes()) {
      const network = this.opts.network(live);
      if (network) await applyNetworkPolicy(network, live.record, { reapply: true });
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

interface FirewallMember {
  logger: Logger;
  reapply: () => Promise<void>;
}

/**
 * The firewall check of one address pool, shared by the runtimes that use it (an agent's
 * namespace and microVM runtimes): one run of `nft` every 2 s however many runtimes there are,
 * and when the firewall was removed, one reinstall and then every runtime's sandboxes again.
 */
class FirewallWatch {
  private readonly members = new Set<FirewallMember>();
  private installed: Promise<unknown> | undefined;
  private checking = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly cidr: string) {}

  join(member: FirewallMember): Promise<unknown> {
    this.members.add(member);
    this.timer ??= setInterval(() => void this.check(), WATCH_INTERVAL_MS).unref();
    this.installed ??= ensureHostFirewall({ cidr: this.cidr }).catch((err: unknown) => {
      this.installed = undefined;
      throw err;
    });
    return this.installed;
  }

  /** The last member to leave stops the checks; the next to join installs the firewall again. */
  leave(member: FirewallMember): void {
    this.members.delete(member);
    if (this.members.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.installed = undefined;
  }

  private async check(): Promise<void> {
    const [first] = this.members;
    if (this.checking || !this.installed || !first) return;
    this.checking = true;
    try {
      await this.installed;
      if (await hostFirewallCurrent()) return;
      first.logger.warn(
        "the host firewall was removed or replaced from outside; installing it again",
      );
      await ensureHostFirewall({ cidr: this.cidr });
      for (const member of this.members) {
        await member.reapply().catch((err: unknown) => {
          member.logger.error({ err }, "putting the sandboxes' firewall rules back failed");
        });
      }
    } catch (err) {
      first.logger.error({ err }, "checking the host firewall failed");
    } finally {
      this.checking = false;
    }
  }
}

const firewallWatches = new WeakMap<AddressPool, FirewallWatch>();

function firewallWatchFor(pool: AddressPool): FirewallWatch {
  let watch = firewallWatches.get(pool);
  if (!watch) {
    watch = new FirewallWatch(pool.cidr);
    firewallWatches.set(pool, watch);
  }
  return watch;
}
