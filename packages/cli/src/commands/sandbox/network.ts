import { Args } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { networkFlags, networkOptions, networkRows } from "../../services/network.js";
import { attach, sandboxJson } from "../../services/sandboxes.js";

export default class SandboxNetwork extends ApiCommand<typeof SandboxNetwork> {
  static override summary = "Replace a sandbox's egress rules, live (no flags: open internet).";
  static override enableJsonFlag = true;
  static override args = {
    id: Args.string({ description: "Sandbox id.", required: true }),
  };
  static override flags = networkFlags;
  static override examples = [
    "<%= config.bin %> sandbox network sbx1 --allow-out api.example.com --allow-out 203.0.113.7",
    "<%= config.bin %> sandbox network sbx1 --deny-out '*.example.org'",
    "<%= config.bin %> sandbox network sbx1 --no-internet",
    "<%= config.bin %> sandbox network sbx1",
  ];

  async run(): Promise<Record<string, unknown> | undefined> {
    const sandbox = await attach(this.args.id, await this.connection(), { resume: false });
    const options = networkOptions(this.flags);
    const info = await sandbox.setNetwork({
      allowInternetAccess: options.allowInternetAccess ?? true,
      ...options.network,
    });
    if (this.jsonEnabled()) return sandboxJson(info);
    for (const [k, v] of networkRows(info)) this.log(`${k}: ${v}`);
    return undefined;
  }
}
