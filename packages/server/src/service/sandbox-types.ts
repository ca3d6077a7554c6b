import type { ClientRequest } from "node:http";
import type { Client } from "@connectrpc/connect";
import { SandboxState as AgentState, type HostAgentService } from "@wrenn/proto/agent";
import type { SandboxState } from "../db/index.js";

// What the sandbox service deals in, apart from its logic: the agents it drives, where new
// sandboxes go, its inputs, and the agents' state names.

export type AgentClient = Client<typeof HostAgentService>;

/** A host agent and the id its sandboxes are recorded under. */
export interface AgentHost {
  client: AgentClient;
  hostId: string;
  /** The agent's HTTP endpoint; envd of each sandbox is proxied under `/sandboxes/<id>/envd`. */
  url: string;
  /** Headers every request to `url` carries (the agent's bearer token). */
  headers?: Record<string, string>;
  /** The certificate an HTTPS agent was registered with: the only one trusted for it. */
  ca?: string;
  /**
   * Aborted, with a host_unreachable ServerError as its reason, when the server gives up on the
   * host: every request to it (agent RPCs, envd calls, file transfers) is broken off then.
   */
  signal?: AbortSignal;
  /**
   * An agent in this process (single-host mode): the request a proxy path under `url` names,
   * made straight to the sandbox without the loopback HTTP hop; undefined: use HTTP.
   */
  direct?: (
    path: string,
    options: { method: string; headers: Record<string, string>; signal?: AbortSignal },
  ) => ClientRequest | undefined;
}

/** Where sandboxes go and how their hosts are reached (see hosts/fleet.ts). */
export interface SandboxPlacer {
  /** The agent of a host by id. */
  host(hostId: string): Promise<AgentHost>;
  /** Picks a host for a new sandbox of the team (and copies the snapshot there if needed). */
  place(teamId: string, request: PlacementRequest): Promise<AgentHost>;
}

export interface PlacementRequest {
  hostId?: string;
  runtime?: string;
  vcpus: number;
  memoryMb: number;
  /** The snapshot's row id when creating from one. */
  snapshotId?: string;
}

export interface SandboxDefaults {
  template: string;
}

export interface CreateSandboxInput {
  /** A base template name; default `defaults.template`. Ignored when `snapshot` is set. */
  template?: string;
  /** A team snapshot by name; the sandbox gets the snapshot's resources. */
  snapshot?: string;
  vcpus?: number;
  memoryMb?: number;
  diskSizeMb?: number;
  /** Seconds of inactivity before auto-pause; 0 (default) never pauses. */
  timeoutSec?: number;
  metadata?: Record<string, string>;
  /** Handed to the agent only: never stored by the server (they are often secrets). */
  envs?: Record<string, string>;
  allowInternetAccess?: boolean;
  /** Egress rules (CIDRs, IPv4 addresses, domains with `*.` for subdomains); deny wins. */
  allowOut?: string[];
  denyOut?: string[];
  /** Its ports answer anyone (default); false: only with its traffic access token. */
  publicTraffic?: boolean;
  /** Traffic through the sandbox routes resumes it when paused (default false). */
  autoResume?: boolean;
  /** Pins the sandbox to this host (the team's own, or a shared one). */
  hostId?: string;
  /** "namespace" or "microvm"; default the host's. */
  runtime?: string;
}

export interface ListSandboxesInput {
  states?: readonly SandboxState[];
  metadata?: Record<string, string>;
  limit?: number;
  cursor?: string;
}

/** The server's name for each state an agent reports. */
export const agentStates: Record<AgentState, SandboxState> = {
  [AgentState.UNSPECIFIED]: "error",
  [AgentState.PENDING]: "pending",
  [AgentState.RUNNING]: "running",
  [AgentState.PAUSED]: "paused",
  [AgentState.STOPPED]: "stopped",
  [AgentState.ERROR]: "error",
};

/** What a sandbox that names no resources is assumed to take, for placement (the agents' defaults). */
export const PLACEMENT_DEFAULTS = { vcpus: 1, memoryMb: 512 } as const;

/** What a new sandbox asks for, after defaults and snapshot resources are applied. */
export interface SandboxAsk {
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  /** Sandboxes asked for at once (a fork's); the resources above are their total. Default 1. */
  count?: number;
}
