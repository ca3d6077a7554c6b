import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { drainHost } from "../../services/hosts.js";

export default class HostDrain extends ApiCommand<typeof HostDrain> {
  static override summary = "Stop placing new sandboxes on a host; its sandboxes keep running.";
  static override enableJsonFlag = true;
  static override args = { id: Args.string({ description: "Host id.", required: true }) };

  async run(): Promise<Record<string, unknown> | undefined> {
    const host = await drainHost(await this.connection(), this.args.id);
    if (this.jsonEnabled()) return host as unknown as Record<string, unknown>;
    this.log(`Host ${host.id} is ${host.state}: no new sandboxes go there.`);
    return undefined;
  }
}
