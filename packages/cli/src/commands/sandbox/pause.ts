import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { attach } from "../../services/sandboxes.js";

export default class SandboxPause extends ApiCommand<typeof SandboxPause> {
  static override summary = "Pause a sandbox (its memory is kept; resume brings it back).";
  static override args = { id: Args.string({ description: "Sandbox id.", required: true }) };

  async run(): Promise<void> {
    const sandbox = await attach(this.args.id, await this.connection(), { resume: false });
    await sandbox.pause();
    this.log(`${this.args.id} paused`);
  }
}
