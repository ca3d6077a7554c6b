import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { attach } from "../../services/sandboxes.js";

export default class SandboxPing extends ApiCommand<typeof SandboxPing> {
  static override summary = "Mark a sandbox active, pushing back its idle timeout.";
  static override args = { id: Args.string({ description: "Sandbox id.", required: true }) };

  async run(): Promise<void> {
    const sandbox = await attach(this.args.id, await this.connection(), { resume: false });
    await sandbox.ping();
    this.log(`${this.args.id} pinged`);
  }
}
