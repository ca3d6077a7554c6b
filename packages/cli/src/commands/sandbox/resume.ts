import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { attach } from "../../services/sandboxes.js";

export default class SandboxResume extends ApiCommand<typeof SandboxResume> {
  static override summary = "Resume a paused sandbox.";
  static override args = { id: Args.string({ description: "Sandbox id.", required: true }) };

  async run(): Promise<void> {
    const sandbox = await attach(this.args.id, await this.connection(), { resume: false });
    await sandbox.resume();
    this.log(`${this.args.id} resumed`);
  }
}
