import { Flags } from "@oclif/core";
import { ApiCommand } from "../../base/index.js";
import { createHostToken, joinCommand } from "../../services/hosts.js";

export default class HostAdd extends ApiCommand<typeof HostAdd> {
  static override summary = "Make a one-time token for a new host to join, and print its command.";
  static override description =
    "A host joined with the token serves only your team, unless --shared (admins): then it serves every team. The token works once, for --ttl seconds (default 1 h).";
  static override enableJsonFlag = true;
  static override examples = [
    "<%= config.bin %> host add",
    "<%= config.bin %> host add --shared --ttl 600",
  ];
  static override flags = {
    shared: Flags.boolean({ description: "A host for every team (admins only)." }),
    ttl: Flags.integer({ description: "Seconds the token stays valid (default 3600).", min: 1 }),
  };

  async run(): Promise<Record<string, unknown> | undefined> {
    const connection = await this.connection();
    const token = await createHostToken(connection, {
      ...(this.flags.shared && { shared: true }),
      ...(this.flags.ttl !== undefined && { ttl_sec: this.flags.ttl }),
    });
    const command = joinCommand(connection.apiUrl, token.token);
    if (this.jsonEnabled()) return { ...token, command };
    this.log(`Token:   ${token.token}`);
    this.log(`Expires: ${token.expires_at} (single use${token.shared ? ", shared host" : ""})`);
    this.log("");
    this.log("On the new machine, as root:");
    this.log(`  ${command}`);
    return undefined;
  }
}
