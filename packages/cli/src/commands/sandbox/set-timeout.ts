import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { formatDuration, parseDuration } from "../../services/format.js";
import { attach } from "../../services/sandboxes.js";

export default class SandboxSetTimeout extends ApiCommand<typeof SandboxSetTimeout> {
  static override summary = "Change how long a sandbox may sit idle before it auto-pauses.";
  static override args = {
    id: Args.string({ description: "Sandbox id.", required: true }),
    timeout: Args.string({ description: "90, 30s, 5m, 1h; 0 never pauses.", required: true }),
  };
  static override examples = ["<%= config.bin %> sandbox set-timeout sbx1 15m"];

  async run(): Promise<void> {
    const ms = parseDuration(this.args.timeout, "timeout");
    const sandbox = await attach(this.args.id, await this.connection(), { resume: false });
    await sandbox.setTimeout(ms);
    this.log(`${this.args.id} idle timeout: ${ms === 0 ? "never" : formatDuration(ms)}`);
  }
}
