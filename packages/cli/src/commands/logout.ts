import { BaseCommand } from "../base/index.js";
import { configPath, forgetApiKey } from "../config/index.js";

export default class Logout extends BaseCommand<typeof Logout> {
  static override summary = "Forget the saved API key (the server URL stays).";

  async run(): Promise<void> {
    if (await forgetApiKey()) this.log(`Logged out: removed the API key from ${configPath()}.`);
    else this.log("Not logged in: no saved API key.");
  }
}
