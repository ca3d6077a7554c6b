import { Args } from "@oclif/core";
import { Snapshot } from "@wrenn/sdk";
import { ApiCommand } from "../../base/index.js";
import { CliError } from "../../errors/index.js";

export default class SnapshotDelete extends ApiCommand<typeof SnapshotDelete> {
  static override summary = "Delete a snapshot.";
  static override hiddenAliases = ["snapshot:rm"];
  static override args = {
    name: Args.string({ description: "Snapshot name or id.", required: true }),
  };

  async run(): Promise<void> {
    if (!(await Snapshot.delete(this.args.name, await this.connection())))
      throw new CliError(
        "not_found",
        `No such snapshot: ${this.args.name}.`,
        "List them with `wrenn snapshot list`.",
      );
    this.log(`Deleted ${this.args.name}`);
  }
}
