import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { attach } from "../../services/sandboxes.js";

export default class FilesRm extends ApiCommand<typeof FilesRm> {
  static override summary = "Remove files or directories (with what they hold) in a sandbox.";
  static override strict = false;
  static override args = {
    id: Args.string({ description: "Sandbox id.", required: true }),
    path: Args.string({ description: "Path (more may follow).", required: true }),
  };

  async run(): Promise<void> {
    const sandbox = await attach(this.args.id, await this.connection());
    for (const path of [this.args.path, ...this.rest]) await sandbox.files.remove(path);
  }
}
