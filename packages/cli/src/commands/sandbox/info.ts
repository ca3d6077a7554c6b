import { Args } from "@oclif/core";
import { Sandbox } from "@wrenn/sdk";
import { ApiCommand } from "../../base/index.js";
import { sandboxDetails, sandboxJson } from "../../services/sandboxes.js";

export default class SandboxInfo extends ApiCommand<typeof SandboxInfo> {
  static override summary = "Show one sandbox.";
  static override enableJsonFlag = true;
  static override args = { id: Args.string({ description: "Sandbox id.", required: true }) };

  async run(): Promise<Record<string, unknown> | undefined> {
    const info = await Sandbox.getInfo(this.args.id, await this.connection());
    if (this.jsonEnabled()) return sandboxJson(info);
    this.log(sandboxDetails(info));
    return undefined;
  }
}
