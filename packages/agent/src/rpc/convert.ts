import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Sandbox,
  type SandboxMetrics,
  SandboxMetricsSchema,
  SandboxSchema,
  SandboxState,
  type Snapshot,
  SnapshotSchema,
} from "@wrenn/proto/agent";
import type {
  SandboxMetrics as RuntimeMetrics,
  SandboxInfo,
  SandboxStatus,
  SnapshotInfo,
} from "../runtime/index.js";

const states: Record<SandboxStatus, SandboxState> = {
  pending: SandboxState.PENDING,
  running: SandboxState.RUNNING,
  paused: SandboxState.PAUSED,
  error: SandboxState.ERROR,
};

export function toSandbox(info: SandboxInfo, lastActiveAt: Date): Sandbox {
  return create(SandboxSchema, {
    sandboxId: info.id,
    template: info.template,
    state: states[info.state],
    vcpus: info.vcpus,
    memoryMb: info.memoryMb,
    diskSizeMb: info.diskSizeMb,
    timeoutSec: info.timeoutSec,
    metadata: info.metadata,
    createdAt: timestampFromDate(info.createdAt),
    lastActiveAt: timestampFromDate(lastActiveAt),
    runtime: info.runtime,
    envdAddress: info.envdAddress,
    autoPaused: info.autoPaused,
    allowInternetAccess: info.allowInternetAccess,
    allowOut: info.egress.allowOut,
    denyOut: info.egress.denyOut,
    error: info.error ?? "",
  });
}

export function toSnapshot(info: SnapshotInfo): Snapshot {
  return create(SnapshotSchema, {
    name: info.name,
    baseTemplate: info.baseTemplate,
    sourceSandboxId: info.sourceSandboxId,
    vcpus: info.vcpus,
    memoryMb: info.memoryMb,
    diskSizeMb: info.diskSizeMb,
    sizeBytes: BigInt(info.sizeBytes),
    createdAt: timestampFromDate(info.createdAt),
    sandboxCount: info.sandboxCount,
  });
}

export function toMetrics(m: RuntimeMetrics): SandboxMetrics {
  return create(SandboxMetricsSchema, {
    timestamp: timestampFromDate(m.timestamp),
    cpuCount: m.cpuCount,
    cpuUsedPct: m.cpuUsedPct,
    cpuUsageUsec: BigInt(Math.round(m.cpuUsageUsec)),
    memUsedBytes: BigInt(m.memUsedBytes),
    memLimitBytes: BigInt(m.memLimitBytes),
    diskUsedBytes: BigInt(m.diskUsedBytes),
    diskLimitBytes: BigInt(m.diskLimitBytes),
    pids: m.pids,
    pidsLimit: m.pidsLimit,
  });
}
