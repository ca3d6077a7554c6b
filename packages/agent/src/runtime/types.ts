import type { Readable } from "node:stream";
import type { EgressRules, NetworkPolicy } from "../network/index.js";

/** What a caller asks for; the runtime fills in what a snapshot locks. */
export interface SandboxSpec {
  /** DNS-label safe, chosen by the caller. */
  id: string;
  /** A template or snapshot name (SafeName). */
  template: string;
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  /** Inactivity before the agent pauses it; 0 = never. Kept by the runtime across restarts. */
  timeoutSec?: number;
  envs?: Record<string, string>;
  metadata?: Record<string, string>;
  allowInternetAccess?: boolean;
  /** allowOut/denyOut (checked by the network: invalid_argument on a bad entry). */
  egress?: EgressRules;
  /** Which runtime of the agent's set runs it (RuntimeSet); the default one when absent. */
  runtime?: string;
}

export type SandboxStatus = "pending" | "running" | "paused" | "error";

export interface SandboxInfo {
  id: string;
  runtime: string;
  template: string;
  state: SandboxStatus;
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  timeoutSec: number;
  metadata: Record<string, string>;
  allowInternetAccess: boolean;
  egress: EgressRules;
  createdAt: Date;
  /** host:port of envd, reachable from the agent. */
  envdAddress: string;
  /**
   * The `X-Access-Token` envd requires (absent for sandboxes from before tokens). Never leaves
   * the agent: the envd proxy adds it to what it forwards.
   */
  envdAccessToken?: string;
  /** Paused by the reaper for inactivity. */
  autoPaused: boolean;
  error?: string;
}

export interface SandboxMetrics {
  timestamp: Date;
  cpuCount: number;
  /** Percent of the sandbox's CPU quota used since the previous sample. */
  cpuUsedPct: number;
  cpuUsageUsec: number;
  memUsedBytes: number;
  memLimitBytes: number;
  /** Allocated blocks × 512. */
  diskUsedBytes: number;
  diskLimitBytes: number;
  pids: number;
  pidsLimit: number;
}

export interface SnapshotInfo {
  name: string;
  baseTemplate: string;
  sourceSandboxId: string;
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  sizeBytes: number;
  createdAt: Date;
  /** Sandboxes running from it; a snapshot in use cannot be deleted. */
  sandboxCount: number;
}

export interface TemplateSummary {
  name: string;
  ready: boolean;
  sizeBytes: number;
}

/** One new sandbox of a fork: template, resources and network access are the source's. */
export interface ForkTarget {
  id: string;
  /** Default: the source's. */
  metadata?: Record<string, string>;
  /** Default: the source's. */
  timeoutSec?: number;
}

export interface ForkResult {
  sandboxes: SandboxInfo[];
  /** How long the source stood still while its state was copied. */
  sourcePauseMs: number;
}

/** What adopt found in the state directory at start. */
export interface AdoptReport {
  /** Sandboxes running or paused again under this runtime. */
  adopted: string[];
  /** Half-made or dead sandboxes whose leftovers were removed. */
  cleaned: string[];
  /** Cleanup failures (the record is kept so the next start retries). */
  errors: Error[];
}

/**
 * How the agent runs sandboxes. Every implementation passes the contract suite in
 * test/contract/runtime-contract.ts. Errors are AgentErrors with a machine code.
 */
export interface Runtime {
  readonly name: string;
  /**
   * The IPv4 range sandbox addresses come from, for runtimes that route one on the host: the
   * agent claims it at start so no other agent on the host uses an overlapping one.
   */
  readonly sandboxCidr?: string;
  /** Resolves once envd in the sandbox answers /health. */
  create(spec: SandboxSpec, options?: { signal?: AbortSignal }): Promise<SandboxInfo>;
  /** Removes everything the sandbox had; tries every step and reports all failures together. */
  destroy(id: string): Promise<void>;
  /** Freezes every process of the sandbox (memory kept). */
  pause(id: string, options?: { auto?: boolean }): Promise<SandboxInfo>;
  resume(id: string): Promise<SandboxInfo>;
  setTimeout(id: string, timeoutSec: number): Promise<SandboxInfo>;
  /** Replaces internet access and egress rules, live (running or paused). */
  setNetwork(id: string, policy: NetworkPolicy): Promise<SandboxInfo>;
  get(id: string): SandboxInfo;
  list(): SandboxInfo[];
  metrics(id: string): Promise<SandboxMetrics>;
  /** Freezes the sandbox's filesystem changes into a new read-only template; it keeps running. */
  snapshot(id: string, name: string): Promise<SnapshotInfo>;
  /**
   * New sandboxes with a running sandbox's files (and, where the runtime can, its memory and
   * processes) as they are now; the source keeps running. All are made or none.
   */
  fork?(id: string, targets: ForkTarget[]): Promise<ForkResult>;
  /** failed_precondition while any sandbox runs from it. */
  deleteSnapshot(name: string): Promise<void>;
  listSnapshots(): Promise<SnapshotInfo[]>;
  /** A tar stream of a snapshot, for another host (not_found when there is none). */
  exportSnapshot?(name: string): Promise<{ info: SnapshotInfo; archive: Readable }>;
  /**
   * Installs a snapshot from another host's {@link exportSnapshot} stream: whole or not at all
   * (already_exists when the name is taken).
   */
  importSnapshot?(
    name: string,
    archive: Readable,
    meta: { sourceSandboxId: string },
  ): Promise<SnapshotInfo>;
  templates(): Promise<TemplateSummary[]>;
  /** Re-adopts live sandboxes from the state directory and removes the debris of the rest. */
  adopt(): Promise<AdoptReport>;
  /** Stops managing sandboxes without touching them (they keep running for the next start). */
  close(): Promise<void>;
}
