import type { SandboxRecord } from "../../db/index.js";
import type { SandboxMetrics } from "../../service/index.js";

/**
 * The envd version reported to E2B's SDK, which gates features on it: Wrenn's envd speaks what
 * E2B's envd 0.5.7 does (stdin, closeStdin, recursive watch, octet-stream uploads) but not file
 * metadata (0.6.2) or watch entries (0.6.3).
 */
export const E2B_ENVD_VERSION = "0.5.7";

/** E2B's sandbox timeout when a create names none, in seconds. */
export const E2B_DEFAULT_TIMEOUT_SEC = 300;

/** E2B knows two states; Wrenn's others are either on their way or gone. */
export function e2bState(record: SandboxRecord): "running" | "paused" {
  return record.state === "paused" ? "paused" : "running";
}

/** When the sandbox's inactivity timeout fires if nothing happens meanwhile. */
function endAt(record: SandboxRecord): string {
  const base = Date.parse(record.lastActiveAt);
  // 0 means never: E2B has no such value, so a far date stands for it.
  const seconds = record.timeoutSec > 0 ? record.timeoutSec : 100 * 365 * 24 * 3600;
  return new Date(base + seconds * 1000).toISOString();
}

export interface SandboxContext {
  domain: string | null;
  accessToken: string;
  /** Null when its ports take public traffic. */
  trafficAccessToken: string | null;
}

/** The `Sandbox` object of create, connect and resume. */
export function sandboxCreated(record: SandboxRecord, ctx: SandboxContext) {
  return {
    sandboxID: record.id,
    templateID: record.template,
    clientID: record.hostId ?? "wrenn",
    alias: record.template,
    envdVersion: E2B_ENVD_VERSION,
    envdAccessToken: ctx.accessToken,
    trafficAccessToken: ctx.trafficAccessToken,
    domain: ctx.domain,
  };
}

/** `ListedSandbox`, as `GET /sandboxes` answers it. */
export function sandboxListed(record: SandboxRecord) {
  return {
    sandboxID: record.id,
    templateID: record.template,
    alias: record.template,
    clientID: record.hostId ?? "wrenn",
    startedAt: record.createdAt,
    endAt: endAt(record),
    cpuCount: record.vcpus,
    memoryMB: record.memoryMb,
    diskSizeMB: record.diskSizeMb,
    metadata: record.metadata,
    state: e2bState(record),
    envdVersion: E2B_ENVD_VERSION,
    volumeMounts: [],
  };
}

/** `SandboxDetail`, as `GET /sandboxes/{id}` answers it. */
export function sandboxDetail(record: SandboxRecord, ctx: SandboxContext) {
  return {
    ...sandboxListed(record),
    envdAccessToken: ctx.accessToken,
    domain: ctx.domain,
    allowInternetAccess: record.network?.allowInternetAccess ?? true,
    network: {
      allowPublicTraffic: record.publicTraffic,
      allowOut: record.network?.allowOut ?? [],
      denyOut: record.network?.denyOut ?? [],
    },
    // Wrenn pauses on timeout (after that much inactivity); it never kills on a timer.
    lifecycle: { onTimeout: "pause", autoResume: record.autoResume },
  };
}

const MIB = 1024 * 1024;

/** `SandboxMetric` (bytes, not Wrenn's MiB). */
export function sandboxMetric(m: SandboxMetrics) {
  const at = new Date(m.timestamp);
  return {
    timestamp: at.toISOString(),
    timestampUnix: Math.floor(at.getTime() / 1000),
    cpuUsedPct: m.cpuUsedPct,
    cpuCount: m.cpuCount,
    memUsed: Math.round(m.memUsedMb * MIB),
    memTotal: Math.round(m.memTotalMb * MIB),
    memCache: 0,
    diskUsed: Math.round(m.diskUsedMb * MIB),
    diskTotal: Math.round(m.diskTotalMb * MIB),
  };
}

/**
 * E2B's `metadata` list filter: its SDK encodes each key and value, joins them as a query string
 * and the query serializer encodes that again. As E2B's server does: the framework decoded once;
 * unescape the whole, split on `&` and `=`, unescape each part.
 */
export function parseMetadataFilter(raw: string): Record<string, string> {
  const queryUnescape = (s: string) => decodeURIComponent(s.replace(/\+/g, " "));
  const out: Record<string, string> = {};
  for (const pair of queryUnescape(raw).split("&")) {
    if (!pair) continue;
    const i = pair.indexOf("=");
    const key = queryUnescape(i < 0 ? pair : pair.slice(0, i));
    out[key] = i < 0 ? "" : queryUnescape(pair.slice(i + 1));
  }
  return out;
}
