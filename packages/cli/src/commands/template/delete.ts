import { Args } from "@oclif/core";
import { Template } from "@wrenn/sdk";
import { ApiCommand } from "../../base/index.js";
import { CliError } from "../../errors/index.js";

export default class TemplateDelete extends ApiCommand<typeof TemplateDelete> {
  static override summary = "Delete a template: every version by name, or one version by id.";
  static override hiddenAliases = ["template:rm"];
  static override args = {
    name: Args.string({ description: "Template name or version id.", required: true }),
  };

  async run(): Promise<void> {
    if (!(await Template.delete(this.args.name, await this.connection())))
      throw new CliError(
        "not_found",
        `No such template: ${this.args.name}.`,
        "List them with `wrenn template list`.",
      );
    this.log(`Deleted ${this.args.name}`);
  }
}
