import { Args, Flags } from "@oclif/core";
import { Sandbox } from "@wrenn/sdk";
import { ApiCommand } from "../../base/index.js";
import { CliError } from "../../errors/index.js";
import { listAll } from "../../services/sandboxes.js";
import { canPrompt, confirm } from "../../ui/interactive.js";

export default class SandboxKill extends ApiCommand<typeof SandboxKill> {
  static override summary = "Destroy sandboxes: one, several, or --all.";
  static override hiddenAliases = ["sandbox:rm"];
  static override strict = false;
  static override args = { id: Args.string({ description: "Sandbox id (more may follow)." }) };
  static override examples = [
    "<%= config.bin %> sandbox kill sbx1",
    "<%= config.bin %> sandbox kill sbx1 sbx2 sbx3",
    "<%= config.bin %> sandbox kill --all --yes",
  ];
  static override flags = {
    all: Flags.boolean({ description: "Every sandbox the key's team has." }),
    yes: Flags.boolean({
      char: "y",
      description: "Do not ask for confirmation.",
      env: "WRENN_YES",
    }),
  };

  async run(): Promise<void> {
    const connection = await this.connection();
    const given = [this.args.id, ...this.rest].filter((id): id is string => Boolean(id));
    let ids = given;
    if (this.flags.all) {
      if (given.length > 0)
        throw new CliError("invalid_argument", "Pass sandbox ids or --all, not both.");
      ids = (await listAll(connection))
        .filter((s) => s.state !== "stopped")
        .map((s) => s.sandboxId);
      if (ids.length === 0) {
        this.log("No sandboxes to kill.");
        return;
      }
      if (!this.flags.yes) {
        if (!canPrompt())
          throw new CliError(
            "needs_confirmation",
            `Refusing to kill ${ids.length} sandbox(es) without confirmation.`,
            "Pass --yes (or set WRENN_YES=1) when running without a terminal.",
          );
        if (!(await confirm(`Kill all ${ids.length} sandbox(es)?`))) {
          this.log("Nothing killed.");
          return;
        }
      }
    } else if (ids.length === 0) {
      throw new CliError(
        "invalid_argument",
        "Which sandbox? Pass one or more ids, or --all.",
        "List them with `wrenn sandbox list`.",
      );
    }
    const missing: string[] = [];
    // Sequential: a few requests each; parallel killing of dozens would only queue on the host.
    for (const id of ids) {
      if (await Sandbox.kill(id, connection)) this.log(`Killed ${id}`);
      else missing.push(id);
    }
    if (missing.length > 0)
      throw new CliError(
        "not_found",
        `No such sandbox: ${missing.join(", ")}.`,
        "List them with `wrenn sandbox list`.",
      );
  }
}
