import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { isPrivateAddress } from "@wrenn/agent";
import type { Logger } from "pino";
import {
  HOST_REFRESH_TTL_SEC,
  type HostCredentials,
  hashOpaqueToken,
  newOpaqueToken,
} from "../auth/index.js";
import {
  type HostRecord,
  type HostRefreshTokenRow,
  newId,
  nowIso,
  type Store,
} from "../db/index.js";
import { ServerError } from "../errors.js";
import { remoteHost } from "../hosts/registry.js";
import type { TeamPrincipal, UserPrincipal } from "./principals.js";

export const REGISTRATION_TOKEN_PREFIX = "wrh_";
export const REFRESH_TOKEN_PREFIX = "wrr_";
const DEFAULT_REGISTRATION_TTL_SEC = 3600;
/** How long the server waits for a registering agent to answer at its advertised URL. */
const PROBE_TIMEOUT_MS = 5_000;

export interface FleetTimings {
  heartbeatSec: number;
  /** A host silent this long is unreachable. */
  staleSec: number;
  hostJwtTtlSec: number;
}

export interface RegisterInput {
  token: string;
  hostId: string;
  instanceId: string;
  advertiseUrl: string;
  hostname: string;
  version: string;
  runtimes: string[];
  defaultRuntime: string;
  runtimeDetails: { name: string; accel: string }[];
  capacity: { vcpus: number; memory_mb: number; disk_mb: number; max_sandboxes: number };
  sandboxCidr: string;
  agentKey: string;
  tlsCert?: string;
}

export interface HostCredentialSet {
  host_id: string;
  host_jwt: string;
  host_jwt_expires_at: string;
  refresh_token: string;
  refresh_token_expires_at: string;
  heartbeat_sec: number;
}

export interface HeartbeatInput {
  hostId: string;
  instanceId: string;
  advertiseUrl?: string;
  usage: Record<string, number>;
}

type Principal = UserPrincipal | TeamPrincipal;

/**
 * How agents join and stay in the fleet: one-time registration tokens, registration (the agent
 * proves it answers at the URL it advertises, with the key it gave), host JWTs with rotating
 * refresh tokens, and heartbeats.
 */
export class HostEnrollmentService {
  constructor(
    private readonly store: Store,
    private readonly credentials: HostCredentials,
    private readonly timings: FleetTimings,
    private readonly logger: Logger,
  ) {}

  /** A one-time token; `shared` (every team's host) needs the operator's team. */
  async createToken(
    principal: Principal,
    input: { shared?: boolean; ttlSec?: number },
  ): Promise<{ token: string; expires_at: string; shared: boolean }> {
    const shared = input.shared ?? false;
    if (shared && !(await this.isAdmin(principal.teamId))) {
      throw new ServerError("permission_denied", "only the operator's team may add shared hosts");
    }
    const { token, hash } = newOpaqueToken(REGISTRATION_TOKEN_PREFIX);
    const now = new Date();
    const expiresAt = nowIso(
      new Date(now.getTime() + (input.ttlSec ?? DEFAULT_REGISTRATION_TTL_SEC) * 1000),
    );
    await this.store.hosts.insertRegistrationToken({
      id: newId(),
      tokenHash: hash,
      teamId: shared ? null : principal.teamId,
      createdByTeam: principal.teamId,
      expiresAt,
      usedAt: null,
      hostId: null,
      createdAt: nowIso(now),
    });
    this.logger.info(
      { op: "host.token", teamId: principal.teamId, shared, expiresAt },
      "host registration token created",
    );
    return { token, expires_at: expiresAt, shared };
  }

  async isAdmin(teamId: string): Promise<boolean> {
    return (await this.store.users.getTeam(teamId))?.isAdmin === 1;
  }

  async register(input: RegisterInput): Promise<HostCredentialSet> {
    const now = nowIso();
    const found = await this.store.hosts.findRegistrationToken(hashOpaqueToken(input.token));
    if (!found) throw new ServerError("unauthenticated", "unknown registration token");
    if (found.usedAt) throw new ServerError("unauthenticated", "registration token already used");
    if (found.expiresAt <= now)
      throw new ServerError("unauthenticated", "registration token expired");
    if (await this.store.hosts.get(input.hostId)) {
      throw new ServerError(
        "conflict",
        `host id ${input.hostId} is already registered (remove it with wrenn host rm first)`,
      );
    }
    await checkAdvertiseUrl(input.advertiseUrl, input.tlsCert);
    await this.probe(input);

    const host: HostRecord = {
      id: input.hostId,
      address: input.advertiseUrl,
      state: "ready",
      teamId: found.teamId,
      hostname: input.hostname,
      version: input.version,
      runtimes: input.runtimes,
      defaultRuntime: input.defaultRuntime,
      runtimeDetails: input.runtimeDetails,
      capacity: input.capacity,
      usage: {},
      sandboxCidr: input.sandboxCidr,
      instanceId: input.instanceId,
      agentKey: this.credentials.seal(input.agentKey),
      tlsCert: input.tlsCert ?? null,
      createdAt: now,
      lastSeenAt: now,
    };
    const issued = await this.store.transaction(async (tx) => {
      if (!(await tx.hosts.useRegistrationToken(found.id, host.id, now))) {
        throw new ServerError("unauthenticated", "registration token already used");
      }
      await tx.hosts.upsert(host);
      return this.issue(tx, host.id, null);
    });
    this.logger.info(
      { op: "host.register", hostId: host.id, address: host.address, teamId: host.teamId },
      "host registered",
    );
    return issued;
  }

  /**
   * A new credential pair. The old refresh token stays usable until the new pair is first used
   * (so an agent that died before saving it can refresh again); presented after that, it is
   * reuse, and the host's whole token family is revoked.
   */
  async refresh(refreshToken: string): Promise<HostCredentialSet> {
    const now = nowIso();
    const outcome = await this.store.transaction<
      { issued: HostCredentialSet } | { reusedBy: string }
    >(async (tx) => {
      const token = await tx.hosts.findRefreshToken(hashOpaqueToken(refreshToken), now);
      if (!token) throw new ServerError("unauthenticated", "unknown or expired refresh token");
      if (token.successorId) {
        const successor = await tx.hosts.getRefreshToken(token.successorId);
        if (!successor || successor.activatedAt) return { reusedBy: token.hostId };
        // Issued but never used: the agent never got it. Replaced by the one issued now.
        await tx.hosts.deleteRefreshToken(successor.id);
      }
      return { issued: await this.issue(tx, token.hostId, token) };
    });
    if ("issued" in outcome) return outcome.issued;
    // Outside the transaction: the revocation must stand although the request fails.
    await this.store.hosts.deleteRefreshTokens(outcome.reusedBy);
    this.logger.warn(
      { op: "host.refresh", hostId: outcome.reusedBy },
      "refresh token reused: host credentials revoked",
    );
    throw new ServerError(
      "unauthenticated",
      "refresh token reused: host credentials revoked; remove the host and register it again",
    );
  }

  /** Who a host JWT speaks for, once the host and its token family still stand. */
  async authenticate(jwt: string): Promise<HostRecord> {
    const claims = await this.credentials.verify(jwt);
    const host = await this.store.hosts.get(claims.hostId);
    if (!host) throw new ServerError("unauthenticated", `host ${claims.hostId} was removed`);
    const token = await this.store.hosts.getRefreshToken(claims.refreshTokenId);
    const replaced =
      token?.successorId &&
      (await this.store.hosts.getRefreshToken(token.successorId))?.activatedAt;
    if (!token || token.hostId !== host.id || replaced) {
      throw new ServerError("unauthenticated", "host credentials were revoked or replaced");
    }
    if (!token.activatedAt) await this.store.hosts.activateRefreshToken(token, nowIso());
    return host;
  }

  async heartbeat(
    host: HostRecord,
    input: HeartbeatInput,
  ): Promise<{ host_state: string; heartbeat_sec: number }> {
    if (input.hostId !== host.id) {
      throw new ServerError("permission_denied", "this host token speaks for another host");
    }
    const now = Date.now();
    const fresh =
      host.lastSeenAt !== null && now - Date.parse(host.lastSeenAt) < this.timings.staleSec * 1000;
    const elsewhere = input.advertiseUrl !== undefined && input.advertiseUrl !== host.address;
    // A restarted agent keeps its address; another process at another address is an impostor.
    if (host.instanceId && host.instanceId !== input.instanceId && fresh && elsewhere) {
      this.logger.warn(
        { op: "host.heartbeat", hostId: host.id, address: input.advertiseUrl },
        "two agents claim one host id",
      );
      throw new ServerError(
        "conflict",
        `host ${host.id} is served by another agent at ${host.address}`,
      );
    }
    if (input.advertiseUrl !== undefined) await checkAdvertiseUrl(input.advertiseUrl, host.tlsCert);
    await this.store.hosts.heartbeat(host.id, {
      instanceId: input.instanceId,
      usage: input.usage,
      at: nowIso(new Date(now)),
      ...(input.advertiseUrl ? { address: input.advertiseUrl } : {}),
    });
    if (host.state === "unreachable") {
      this.logger.info({ op: "host.heartbeat", hostId: host.id }, "host is back");
    }
    return {
      host_state: host.state === "draining" ? "draining" : "ready",
      heartbeat_sec: this.timings.heartbeatSec,
    };
  }

  private async issue(
    store: Store,
    hostId: string,
    parent: HostRefreshTokenRow | null,
  ): Promise<HostCredentialSet> {
    const now = new Date();
    const { token, hash } = newOpaqueToken(REFRESH_TOKEN_PREFIX);
    const refreshExpiresAt = nowIso(new Date(now.getTime() + HOST_REFRESH_TTL_SEC * 1000));
    const id = newId();
    await store.hosts.insertRefreshToken({
      id,
      hostId,
      tokenHash: hash,
      expiresAt: refreshExpiresAt,
      createdAt: nowIso(now),
      parentId: parent?.id ?? null,
      successorId: null,
      activatedAt: null,
    });
    if (parent) await store.hosts.setSuccessor(parent.id, id);
    const jwt = await this.credentials.sign(
      { hostId, refreshTokenId: id },
      this.timings.hostJwtTtlSec,
      now,
    );
    return {
      host_id: hostId,
      host_jwt: jwt.token,
      host_jwt_expires_at: nowIso(jwt.expiresAt),
      refresh_token: token,
      refresh_token_expires_at: refreshExpiresAt,
      heartbeat_sec: this.timings.heartbeatSec,
    };
  }

  /** The agent must answer at its advertised URL, with the key it gave, as the host it claims. */
  private async probe(input: RegisterInput): Promise<void> {
    const agent = remoteHost(input.hostId, input.advertiseUrl, input.agentKey, input.tlsCert);
    let answered: string;
    try {
      answered = (await agent.client.getHostInfo({}, { timeoutMs: PROBE_TIMEOUT_MS })).hostId;
    } catch (err) {
      throw new ServerError(
        "invalid_argument",
        `cannot reach the agent at ${input.advertiseUrl} with its key: check --advertise-url and that this server can connect to it`,
        { cause: err },
      );
    }
    if (answered !== input.hostId) {
      throw new ServerError(
        "invalid_argument",
        `the agent at ${input.advertiseUrl} is host ${answered}, not ${input.hostId}`,
      );
    }
  }
}

/** Plain HTTP only to loopback and private addresses: beyond them the agent key would travel bare. */
async function checkAdvertiseUrl(url: string, tlsCert: string | null | undefined): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ServerError("invalid_argument", `advertise_url: not a URL: ${url}`);
  }
  if (parsed.protocol === "https:") {
    if (!tlsCert) {
      throw new ServerError(
        "invalid_argument",
        "an https advertise_url needs the agent's tls_cert",
      );
    }
    return;
  }
  if (parsed.protocol !== "http:") {
    throw new ServerError("invalid_argument", "advertise_url must be http:// or https://");
  }
  const name = parsed.hostname.replace(/^\[|\]$/g, "");
  const address = isIP(name) ? name : (await lookup(name).catch(() => undefined))?.address;
  if (!address || !isPrivateAddress(address)) {
    throw new ServerError(
      "invalid_argument",
      `plain http is accepted only to loopback or private addresses; serve the agent over TLS (WRENN_TLS_CERT/WRENN_TLS_KEY) to advertise ${parsed.host}`,
    );
  }
}
