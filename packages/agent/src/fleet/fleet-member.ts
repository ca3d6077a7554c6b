import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { GetHostInfoResponse } from "@wrenn/proto/agent";
import type { Logger } from "pino";
import { AgentError } from "../errors.js";
import type { Runtime } from "../runtime/index.js";
import { ControlPlane, ControlPlaneError } from "./control-plane.js";
import {
  CREDENTIALS_FILE,
  type HostCredentials,
  newAgentKey,
  readCredentials,
  writeCredentials,
} from "./credentials.js";
import { type CredentialsResponse, register } from "./registration.js";
import { checkServerUrl } from "./server-url.js";

const DEFAULT_HEARTBEAT_SEC = 10;
/** Longest wait between attempts while the server does not answer. */
const MAX_BACKOFF_MS = 60_000;

/**
 * Test hook (`WRENN_TEST_CRASH_AFTER_REFRESH=1`): the agent kills itself with SIGKILL right after
 * the server issued a new credential pair and before it is saved, so a test can prove the old
 * refresh token still works after the restart. Never set it outside tests.
 */
export const CRASH_AFTER_REFRESH_ENV = "WRENN_TEST_CRASH_AFTER_REFRESH";

export interface FleetMemberOptions {
  agentDir: string;
  serverUrl: string;
  /** Needed only when the agent directory holds no credentials yet. */
  registrationToken?: string;
  /** Path of a PEM CA file the server's certificate must chain to. */
  serverCa?: string;
  /** Undefined: the server's value (default 10). */
  heartbeatSec?: number;
  cpGraceSec: number;
  runtime: Runtime;
  /** The agent's own GetHostInfo answer (capacity, usage, host id). */
  hostInfo: () => Promise<GetHostInfoResponse>;
  logger: Logger;
}

export interface HeartbeatResponse {
  host_state: "ready" | "draining";
  heartbeat_sec?: number;
}

/**
 * This agent as a member of a fleet: its credentials, its registration and its heartbeats.
 * Without an answer from the server for `cpGraceSec` it pauses every running sandbox (nothing
 * runs unwatched) and keeps trying; the server reconciles when it answers again.
 */
export class FleetMember {
  /** The bearer every call to this agent must carry. */
  readonly agentKey: string;
  readonly instanceId = randomUUID();
  /** What the last heartbeat answer said. */
  hostState: HeartbeatResponse["host_state"] | undefined;
  private creds: HostCredentials | undefined;
  private readonly cp: ControlPlane;
  private readonly opts: FleetMemberOptions;
  private readonly logger: Logger;
  private advertiseUrl = "";
  private heartbeatSec: number;
  private lastOk = Date.now();
  private failures = 0;
  private lastFailure = "";
  private pausedForGrace = false;
  private readonly stop = new AbortController();
  private loop: Promise<void> | undefined;

  private constructor(
    opts: FleetMemberOptions,
    cp: ControlPlane,
    creds: HostCredentials | undefined,
  ) {
    this.opts = opts;
    this.cp = cp;
    this.creds = creds;
    this.agentKey = creds?.agent_key ?? newAgentKey();
    this.heartbeatSec = opts.heartbeatSec ?? DEFAULT_HEARTBEAT_SEC;
    this.logger = opts.logger.child({ component: "fleet" });
  }

  /**
   * Checks the server URL and loads the credentials (or makes a new agent key for the
   * registration to come). Fails, before anything is served, when there is nothing to join with.
   */
  static async prepare(opts: FleetMemberOptions): Promise<FleetMember> {
    const logger = opts.logger.child({ component: "fleet" });
    const url = await checkServerUrl(opts.serverUrl, (message) => logger.warn(message));
    const creds = await readCredentials(opts.agentDir);
    if (creds && new URL(creds.server_url).origin !== url.origin) {
      throw new AgentError(
        "failed_precondition",
        `${opts.agentDir}/${CREDENTIALS_FILE} belongs to the server ${creds.server_url}, not ${opts.serverUrl}; remove it to register with another server`,
      );
    }
    if (!creds && !opts.registrationToken) {
      throw new AgentError(
        "failed_precondition",
        `no host credentials in ${opts.agentDir} and no registration token: pass --registration-token (from \`wrenn host add\` on the server)`,
      );
    }
    if (creds && opts.registrationToken) {
      logger.info("host credentials found: the registration token is not needed and not used");
    }
    const ca = opts.serverCa ? await readFile(opts.serverCa, "utf8") : undefined;
    return new FleetMember(opts, new ControlPlane({ serverUrl: url.href, ca }), creds);
  }

  get hostId(): string | undefined {
    return this.creds?.host_id;
  }

  /**
   * Registers (first start) with the agent already serving at `advertiseUrl`, then heartbeats
   * until close. A failed registration rejects; later failures are retried forever.
   */
  async join(advertiseUrl: string, tlsCert?: string): Promise<void> {
    this.advertiseUrl = advertiseUrl;
    if (!this.creds) {
      const info = await this.opts.hostInfo();
      const res = await register({
        controlPlane: this.cp,
        serverUrl: this.opts.serverUrl,
        token: this.opts.registrationToken!,
        instanceId: this.instanceId,
        advertiseUrl,
        agentKey: this.agentKey,
        sandboxCidr: this.opts.runtime.sandboxCidr ?? "",
        info,
        tlsCert,
      });
      await writeCredentials(this.opts.agentDir, res);
      this.creds = res;
      this.useServerInterval(res);
      this.logger.info(
        { hostId: res.host_id, server: this.opts.serverUrl, advertiseUrl },
        "registered with the server",
      );
    }
    this.lastOk = Date.now();
    this.loop = this.run();
  }

  async close(): Promise<void> {
    this.stop.abort();
    // Cuts a heartbeat in flight: closing does not wait out its timeout.
    this.cp.close();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stop.signal.aborted) {
      let delayMs = this.heartbeatSec * 1000;
      try {
        await this.beat();
        this.succeeded();
      } catch (err) {
        if (this.stop.signal.aborted) break;
        this.failed(err);
        // Backs off while the server is unreachable or failing; an answer that refuses (409 while
        // another instance's heartbeats are fresh) is retried at the normal pace.
        const refused = err instanceof ControlPlaneError && err.status >= 400 && err.status < 500;
        if (!refused) {
          delayMs = Math.min(delayMs * 2 ** Math.min(this.failures - 1, 10), MAX_BACKOFF_MS);
        }
        await this.checkGrace();
        // Back-off never postpones the pause past the grace period.
        if (!this.pausedForGrace) {
          const left = this.lastOk + this.opts.cpGraceSec * 1000 - Date.now();
          delayMs = Math.max(100, Math.min(delayMs, left));
        }
      }
      await sleep(delayMs, undefined, { signal: this.stop.signal }).catch(() => {});
    }
  }

  /** One heartbeat; on 401 one refresh (saved before use) and a second try. */
  private async beat(): Promise<void> {
    try {
      this.hostState = (await this.sendHeartbeat()).host_state;
    } catch (err) {
      if (!(err instanceof ControlPlaneError && err.status === 401)) throw err;
      await this.refresh();
      this.hostState = (await this.sendHeartbeat()).host_state;
    }
  }

  private async sendHeartbeat(): Promise<HeartbeatResponse> {
    const creds = this.creds!;
    const usage = (await this.opts.hostInfo()).usage;
    const res = await this.cp.post<HeartbeatResponse>(
      "/v1/hosts/heartbeat",
      {
        host_id: creds.host_id,
        instance_id: this.instanceId,
        advertise_url: this.advertiseUrl,
        usage: {
          sandboxes_running: usage?.sandboxesRunning ?? 0,
          sandboxes_paused: usage?.sandboxesPaused ?? 0,
          memory_allocated_mb: Number(usage?.memoryAllocatedMb ?? 0),
          vcpus_allocated: usage?.vcpusAllocated ?? 0,
        },
        sandboxes: this.opts.runtime.list().map((s) => ({ id: s.id, state: s.state })),
      },
      creds.host_jwt,
    );
    this.useServerInterval(res);
    return res;
  }

  private async refresh(): Promise<void> {
    const creds = this.creds!;
    let res: CredentialsResponse;
    try {
      res = await this.cp.post<CredentialsResponse>("/v1/hosts/refresh", {
        refresh_token: creds.refresh_token,
      });
    } catch (err) {
      if (err instanceof ControlPlaneError && err.status === 401) {
        throw new AgentError(
          "unauthenticated",
          `the server refused this host's refresh token (${err.message}): an admin must register this host again (remove ${this.opts.agentDir}/${CREDENTIALS_FILE}, then start with a new --registration-token)`,
          { cause: err },
        );
      }
      throw err;
    }
    if (process.env[CRASH_AFTER_REFRESH_ENV] === "1") {
      this.logger.warn(`${CRASH_AFTER_REFRESH_ENV}: dying before the new credentials are saved`);
      process.kill(process.pid, "SIGKILL");
    }
    const next: HostCredentials = {
      ...creds,
      host_jwt: res.host_jwt,
      host_jwt_expires_at: res.host_jwt_expires_at,
      refresh_token: res.refresh_token,
      refresh_token_expires_at: res.refresh_token_expires_at,
    };
    // Saved before first use: the server revokes the old pair once the new JWT is seen.
    await writeCredentials(this.opts.agentDir, next);
    this.creds = next;
    this.logger.info({ expiresAt: res.host_jwt_expires_at }, "host credentials refreshed");
  }

  private succeeded(): void {
    if (this.failures > 0 || this.pausedForGrace) {
      this.logger.info(
        { afterFailures: this.failures, pausedSandboxes: this.pausedForGrace },
        "the server answers again; heartbeats resumed (the server reconciles sandboxes)",
      );
    }
    this.lastOk = Date.now();
    this.failures = 0;
    this.lastFailure = "";
    this.pausedForGrace = false;
  }

  private failed(err: unknown): void {
    this.failures++;
    const message = AgentError.from(err).message;
    // Logged when the reason changes, not on every retry.
    if (message !== this.lastFailure) {
      this.lastFailure = message;
      const log = err instanceof AgentError && err.code === "unauthenticated" ? "error" : "warn";
      this.logger[log]({ err: message, failures: this.failures }, "heartbeat failed");
    }
  }

  /** Past the grace period without the server: every running sandbox is paused, once. */
  private async checkGrace(): Promise<void> {
    if (this.pausedForGrace || Date.now() - this.lastOk < this.opts.cpGraceSec * 1000) return;
    this.pausedForGrace = true;
    const running = this.opts.runtime.list().filter((s) => s.state === "running");
    const results = await Promise.allSettled(running.map((s) => this.opts.runtime.pause(s.id)));
    const failed = results.filter((r) => r.status === "rejected").map((r) => String(r.reason));
    this.logger.error(
      {
        graceSec: this.opts.cpGraceSec,
        paused: running.length - failed.length,
        ...(failed.length > 0 && { pauseErrors: failed }),
      },
      "no answer from the server within the grace period: running sandboxes paused (nothing runs unwatched); retrying",
    );
  }

  private useServerInterval(res: { heartbeat_sec?: number }): void {
    if (this.opts.heartbeatSec === undefined && res.heartbeat_sec && res.heartbeat_sec > 0) {
      this.heartbeatSec = res.heartbeat_sec;
    }
  }
}
