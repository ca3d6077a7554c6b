import { Args } from "@oclif/core";
import { Sandbox } from "@wrenn/sdk";
import { ApiCommand } from "../../base/index.js";

export default class SandboxUrl extends ApiCommand<typeof SandboxUrl> {
  static override summary = "Print the public URL of a port of a sandbox.";
  static override description =
    "Requests for <port>-<id>.<domain> reach that port inside the sandbox (HTTP and WebSocket); the server needs WRENN_DOMAIN and a wildcard DNS name pointing at it. For a sandbox created with --no-public-traffic a second line gives the header its requests need.";
  static override enableJsonFlag = true;
  static override args = {
    id: Args.string({ description: "Sandbox id.", required: true }),
    port: Args.integer({
      description: "Port inside the sandbox.",
      required: true,
      min: 1,
      max: 65_535,
    }),
  };

  async run(): Promise<Record<string, unknown> | undefined> {
    const sandbox = await Sandbox.connect(this.args.id, {
      ...(await this.connection()),
      resume: false,
    });
    const { host, url, trafficAccessToken } = await sandbox.getPortUrl(this.args.port);
    if (this.jsonEnabled())
      return { port: this.args.port, host, url, ...(trafficAccessToken && { trafficAccessToken }) };
    this.log(url);
    if (trafficAccessToken) this.log(`e2b-traffic-access-token: ${trafficAccessToken}`);
    return undefined;
  }
}
