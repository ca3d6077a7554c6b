import { Args, Flags } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { CliError } from "../../errors/index.js";
import { HostBusyError, removeHost } from "../../services/hosts.js";

export default class HostRm extends ApiCommand<typeof HostRm> {
  static override summary = "Remove a host from the fleet and revoke its credentials.";
  static override description =
    "Refused while the host has sandboxes, unless --force: then they are destroyed (where the host is reachable) and marked stopped.";
  static override hiddenAliases = ["host:remove"];
  static override args = { id: Args.string({ description: "Host id.", required: true }) };
  static override flags = {
    force: Flags.boolean({ description: "Destroy the host's sandboxes too." }),
  };

  async run(): Promise<void> {
    try {
      await removeHost(await this.connection(), this.args.id, this.flags.force);
    } catch (err) {
      if (err instanceof HostBusyError)
        throw new CliError(
          "host_busy",
          `Host ${this.args.id} still has ${err.sandboxes.length} sandbox(es): ${err.sandboxes.join(", ")}.`,
          `Kill them first, or pass --force to destroy them: \`wrenn host rm ${this.args.id} --force\`.`,
        );
      throw err;
    }
    this.log(`Removed host ${this.args.id}`);
  }
}
