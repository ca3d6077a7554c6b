import { ApiCommand } from "../base/index.js";
import { describeIdentity, whoami } from "../services/auth.js";

export default class Whoami extends ApiCommand<typeof Whoami> {
  static override summary = "Show which server and account the API key belongs to.";
  static override enableJsonFlag = true;

  async run(): Promise<Record<string, unknown> | undefined> {
    const connection = await this.connection();
    const identity = await whoami(connection);
    if (this.jsonEnabled()) return { api_url: connection.apiUrl, ...identity };
    this.log(`${describeIdentity(identity)} on ${connection.apiUrl}`);
    return undefined;
  }
}
