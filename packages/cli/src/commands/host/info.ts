import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { getHost, hostDetails } from "../../services/hosts.js";

export default class HostInfo extends ApiCommand<typeof HostInfo> {
  static override summary = "Show one host.";
  static override enableJsonFlag = true;
  static override args = { id: Args.string({ description: "Host id.", required: true }) };

  async run(): Promise<Record<string, unknown> | undefined> {
    const host = await getHost(await this.connection(), this.args.id);
    if (this.jsonEnabled()) return host as unknown as Record<string, unknown>;
    this.log(hostDetails(host));
    return undefined;
  }
}
