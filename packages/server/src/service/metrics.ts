import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ServerError } from "../errors.js";
import { rethrowAgentError } from "./agent-errors.js";
import type { SandboxService } from "./sandboxes.js";

/** A sandbox's resource use as its host's agent samples it (cgroup and disk). */
export interface SandboxMetrics {
  cpuUsedPct: number;
  cpuCount: number;
  memUsedMb: number;
  memTotalMb: number;
  diskUsedMb: number;
  diskTotalMb: number;
  timestamp: string;
}

const MIB = 1024 * 1024;
/** MiB with two decimals: small sandboxes use fractions of one. */
const mib = (bytes: bigint) => Math.round((Number(bytes) / MIB) * 100) / 100;

export class MetricsService {
  constructor(private readonly sandboxes: SandboxService) {}

  async get(teamId: string, id: string): Promise<SandboxMetrics> {
    const host = await this.sandboxes.reachable(teamId, id, { activity: false });
    const { metrics } = await host.client
      .getSandboxMetrics({ sandboxId: id })
      .catch(rethrowAgentError("metrics"));
    if (!metrics) throw new ServerError("internal", "metrics: the agent returned none");
    return {
      cpuUsedPct: Math.round(metrics.cpuUsedPct * 100) / 100,
      cpuCount: metrics.cpuCount,
      memUsedMb: mib(metrics.memUsedBytes),
      memTotalMb: mib(metrics.memLimitBytes),
      diskUsedMb: mib(metrics.diskUsedBytes),
      diskTotalMb: mib(metrics.diskLimitBytes),
      timestamp: (metrics.timestamp ? timestampDate(metrics.timestamp) : new Date()).toISOString(),
    };
  }
}
