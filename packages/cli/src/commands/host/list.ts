import { ApiCommand } from "../../base/index.js";
import { hostTable, listHosts } from "../../services/hosts.js";

export default class HostList extends ApiCommand<typeof HostList> {
  static override summary = "List the hosts sandboxes run on.";
  static override hiddenAliases = ["host:ls"];
  static override enableJsonFlag = true;

  async run(): Promise<Record<string, unknown>[] | undefined> {
    const hosts = await listHosts(await this.connection());
    if (this.jsonEnabled()) return hosts as unknown as Record<string, unknown>[];
    if (hosts.length === 0) {
      this.log("No hosts. Add one with `wrenn host add`.");
      return undefined;
    }
    this.log(hostTable(hosts));
    return undefined;
  }
}
