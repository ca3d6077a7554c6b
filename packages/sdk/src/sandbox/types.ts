/** A sandbox's lifecycle state. */
export type SandboxState = "pending" | "running" | "paused" | "stopped" | "missing" | "error";

/**
 * Egress rules: CIDRs, IPv4 addresses and domain names (`*.example.com` for its subdomains).
 * A non-empty `allowOut` lets out only what it names; `denyOut` wins over `allowOut`. Domain
 * rules hold against hard-coded addresses too: only addresses the sandbox's DNS resolved for an
 * allowed name pass.
 */
export interface SandboxNetworkRules {
  allowOut?: string[];
  denyOut?: string[];
}

/** A sandbox's network policy as the server has it. */
export interface SandboxNetworkInfo {
  allowInternetAccess: boolean;
  allowOut: string[];
  denyOut: string[];
}

/** What the server knows about a sandbox. */
export interface SandboxInfo {
  sandboxId: string;
  /** The template (or team snapshot) it was created from. */
  template: string;
  state: SandboxState;
  /** The host it runs on (several hosts: see `wrenn host list`). */
  hostId: string | null;
  /** "namespace" or "microvm". */
  runtime: string;
  vcpus: number;
  memoryMb: number;
  diskSizeMb: number;
  /** Inactivity before it pauses itself; 0 = never. */
  timeoutMs: number;
  metadata: Record<string, string>;
  network: SandboxNetworkInfo;
  createdAt: Date;
  updatedAt: Date;
  lastActiveAt: Date;
  /** When it was destroyed. */
  stoppedAt?: Date;
  /** Its ports answer anyone (else only with its traffic access token). */
  allowPublicTraffic: boolean;
  /** Traffic to its ports resumes it when paused. */
  autoResume: boolean;
}

/** Resource use of a running sandbox (whatever the server measures, camelCased). */
export interface SandboxMetrics {
  /** CPU used since the previous sample, as a percentage of the sandbox's quota. */
  cpuUsedPct?: number;
  /** vCPUs the sandbox may use. */
  cpuCount?: number;
  memUsedMb?: number;
  memTotalMb?: number;
  diskUsedMb?: number;
  diskTotalMb?: number;
  /** When it was measured. */
  timestamp: Date;
  [key: string]: number | Date | string | undefined;
}

/** The server's snake_case sandbox. */
export interface WireSandbox {
  id: string;
  template: string;
  state: SandboxState;
  host_id: string | null;
  runtime: string;
  vcpus: number;
  memory_mb: number;
  disk_size_mb: number;
  timeout_sec: number;
  metadata: Record<string, string>;
  network?: { allow_internet_access: boolean; allow_out: string[]; deny_out: string[] };
  created_at: string;
  updated_at: string;
  last_active_at: string;
  stopped_at: string | null;
  /** Absent from servers older than the public-traffic switch (their ports were public). */
  allow_public_traffic?: boolean;
  auto_resume?: boolean;
}

export function sandboxFromWire(s: WireSandbox): SandboxInfo {
  return {
    sandboxId: s.id,
    template: s.template,
    state: s.state,
    hostId: s.host_id ?? null,
    runtime: s.runtime,
    vcpus: s.vcpus,
    memoryMb: s.memory_mb,
    diskSizeMb: s.disk_size_mb,
    timeoutMs: s.timeout_sec * 1000,
    metadata: s.metadata,
    network: {
      allowInternetAccess: s.network?.allow_internet_access ?? true,
      allowOut: s.network?.allow_out ?? [],
      denyOut: s.network?.deny_out ?? [],
    },
    createdAt: new Date(s.created_at),
    updatedAt: new Date(s.updated_at),
    lastActiveAt: new Date(s.last_active_at),
    ...(s.stopped_at ? { stoppedAt: new Date(s.stopped_at) } : {}),
    allowPublicTraffic: s.allow_public_traffic ?? true,
    autoResume: s.auto_resume ?? false,
  };
}

/** `{ cpu_used_pct: 1 }` → `{ cpuUsedPct: 1 }`, with `timestamp` as a Date. */
export function metricsFromWire(wire: Record<string, unknown>): SandboxMetrics {
  const metrics: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(wire)) {
    metrics[key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())] = value;
  }
  metrics.timestamp = new Date(
    typeof metrics.timestamp === "string" ? metrics.timestamp : Date.now(),
  );
  return metrics as SandboxMetrics;
}
