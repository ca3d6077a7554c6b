import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { attach } from "../../services/sandboxes.js";

export default class FilesMv extends ApiCommand<typeof FilesMv> {
  static override summary = "Move or rename a file or directory in a sandbox.";
  static override args = {
    id: Args.string({ description: "Sandbox id.", required: true }),
    from: Args.string({ description: "Current path.", required: true }),
    to: Args.string({ description: "New path.", required: true }),
  };

  async run(): Promise<void> {
    const sandbox = await attach(this.args.id, await this.connection());
    await sandbox.files.rename(this.args.from, this.args.to);
  }
}
