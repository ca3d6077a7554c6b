import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { formatBytes } from "../../services/format.js";
import { attach } from "../../services/sandboxes.js";

export default class SandboxMetrics extends ApiCommand<typeof SandboxMetrics> {
  static override summary = "Show a sandbox's CPU, memory and disk use.";
  static override enableJsonFlag = true;
  static override args = { id: Args.string({ description: "Sandbox id.", required: true }) };

  async run(): Promise<Record<string, unknown> | undefined> {
    const sandbox = await attach(this.args.id, await this.connection(), { resume: false });
    const m = await sandbox.getMetrics();
    if (this.jsonEnabled()) return JSON.parse(JSON.stringify(m)) as Record<string, unknown>;
    const mib = (n: number | undefined) =>
      n === undefined ? "-" : formatBytes(Math.round(n * 1024 * 1024));
    this.log(`CPU:     ${m.cpuUsedPct === undefined ? "-" : `${m.cpuUsedPct.toFixed(1)}%`}`);
    this.log(`Memory:  ${mib(m.memUsedMb)} / ${mib(m.memTotalMb)}`);
    this.log(`Disk:    ${mib(m.diskUsedMb)} / ${mib(m.diskTotalMb)}`);
    return undefined;
  }
}
